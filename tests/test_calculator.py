"""The calculator tool: the values it writes equal Python's, inside the jitted sampler it
writes them only after `<<expr=`, and rows without an annotation decode as without it."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, strategies as st

from s2jax import calculator as calc_lib
from s2jax import sharding
from s2jax.models.transformer import ModelConfig, Transformer
from s2jax.sampling import Sampler

numbers = st.one_of(st.integers(0, 10 ** 6).map(str),
                    st.tuples(st.integers(0, 999), st.integers(1, 99)).map(
                        lambda t: f"{t[0]}.{t[1]}"))


@st.composite
def expressions(draw, depth=3):
  if depth == 0 or draw(st.booleans()):
    return draw(numbers)
  op = draw(st.sampled_from("+-*/"))
  left, right = draw(expressions(depth=depth - 1)), draw(expressions(depth=depth - 1))
  text = f"{left}{op}{right}"
  return f"({text})" if draw(st.booleans()) else text


# A toy vocabulary: every character the tool writes, the expression characters, and a few
# words to script the model's text with.
VOCAB = ["<pad>", "<eos>"] + list("0123456789.-+*/()=") + ["<<", ">>", "q", "r", "x", "y"]
ID = {t: i for i, t in enumerate(VOCAB)}


def toy_calculator():
  width = max(len(t) for t in VOCAB)
  chars = np.zeros((len(VOCAB), width), np.int32)
  for i, t in enumerate(VOCAB):
    if not t.startswith("<") or t == "<<":
      chars[i, :len(t)] = [ord(c) for c in t]
  return calc_lib.Calculator(chars, {c: ID[c] for c in "0123456789.-"}, (ID[">>"],))


@given(expressions())
def test_the_values_it_writes_equal_pythons(expr):
  """Integers exactly, however large; anything with a decimal or a division to the six
  decimals the tool writes (Python's float result carries its own rounding error)."""
  calc = toy_calculator()
  ids = calc.forced_tokens(expr)
  try:
    want = eval(expr)  # the expressions are digits, operators and parentheses only
  except ZeroDivisionError:
    assert ids is None
    return
  if ids is None:  # only a value too long to write
    assert len(calc_lib.format_value(want)) + 1 > calc_lib.MAX_FORCED, (expr, want)
    return
  written = "".join(VOCAB[i] for i in ids)
  assert written.endswith(">>")
  if isinstance(want, int):
    assert written[:-2] == str(want)
  else:
    assert abs(float(written[:-2]) - want) <= 6e-7 + 1e-9 * abs(want), (expr, written, want)


def scripted_model(successor: dict):
  """A transformer whose greedy next token is successor[current token]: attention and MLP
  outputs are zero, so the residual stream is the token's embedding, and the LM head maps
  each (orthonormal) embedding to its successor's logit."""
  v = len(VOCAB)
  cfg = ModelConfig(vocab_size=v, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                    mlp_dim=32, tie_embeddings=False)
  model = Transformer(cfg)
  params, _ = sharding.init_params(model, jax.random.key(0),
                                   sharding.make_mesh((1, 1, 1), jax.devices()[:1]))
  flat = flax.traverse_util.flatten_dict(jax.tree.map(np.asarray, params), sep="/")
  emb = np.linalg.qr(np.random.default_rng(0).normal(size=(32, v)))[0].T  # [V, 32] orthonormal
  head = np.zeros((32, v), np.float32)
  for a, b in successor.items():
    head[:, ID[b]] += 50 * emb[ID[a]]
  for k in flat:
    if k.endswith(("wo", "w_down")):
      flat[k] = np.zeros_like(flat[k])
  flat["embedding"] = (emb * np.sqrt(32)).astype(np.float32)
  flat["lm_head"] = head
  return model, jax.tree.map(jnp.asarray, flax.traverse_util.unflatten_dict(flat, sep="/"))


def test_the_tool_writes_after_the_equals_sign_and_leaves_other_rows_alone():
  # Row 0 writes "<<3+4=" and would then guess 9; row 1 never opens an annotation.
  successor = {"q": "<<", "<<": "3", "3": "+", "+": "4", "4": "=", "=": "9", "9": ">>",
               "7": ">>", ">>": "x", "x": "<eos>", "r": "y", "y": "x"}
  model, params = scripted_model(successor)
  prompts = [[ID["q"]], [ID["r"]]]
  off = Sampler(model, pad_id=0, eos_id=1, max_cache_len=48)(params, prompts, max_new_tokens=12)
  on = Sampler(model, pad_id=0, eos_id=1, max_cache_len=48, calculator=toy_calculator())(
      params, prompts, max_new_tokens=12)
  text = lambda g, i: [VOCAB[t] for t in g.tokens[i, :g.lengths[i]]]
  assert text(off, 0) == ["<<", "3", "+", "4", "=", "9", ">>", "x", "<eos>"]
  assert text(on, 0) == ["<<", "3", "+", "4", "=", "7", ">>", "x", "<eos>"]
  assert on.tool_mask[0, :on.lengths[0]].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0]
  np.testing.assert_array_equal(on.tokens[1], off.tokens[1])
  np.testing.assert_array_equal(on.logprobs[1], off.logprobs[1])
  assert not on.tool_mask[1].any() and not off.tool_mask.any()
  # The log-probability of a tool token is the model's own for that token.
  assert on.logprobs[0, 5] < off.logprobs[0, 5]
  # Training masks exactly the tokens sampling forces.
  assert calc_lib.tool_token_mask(text(on, 0)) == on.tool_mask[0, :on.lengths[0]].tolist()


def test_an_expression_it_cannot_evaluate_writes_nothing():
  successor = {"q": "<<", "<<": "3", "3": "/", "/": "0", "0": "=", "=": "x", "x": "<eos>"}
  model, params = scripted_model(successor)
  on = Sampler(model, pad_id=0, eos_id=1, max_cache_len=48, calculator=toy_calculator())(
      params, [[ID["q"]]], max_new_tokens=12)
  assert [VOCAB[t] for t in on.tokens[0, :on.lengths[0]]] == ["<<", "3", "/", "0", "=", "x",
                                                             "<eos>"]
  assert not on.tool_mask.any()


def test_tool_tokens_are_kept_out_of_the_loss_when_asked():
  from s2jax.data import batches
  texts = ["Flo", " has", " 2", "3", "-", "6", " =", " <<", "2", "3", "-", "6", "=", "1", "7",
           ">>", "1", "7", " stamps", ".", " <<", "2", "*", "3", "=", "6", ">>", "6"]
  mask = calc_lib.tool_token_mask(texts)
  assert [t for t, m in zip(texts, mask) if m] == ["1", "7", ">>", "6", ">>"]

  class Tok:  # one token per entry of `texts`
    eos_id, pad_id, bos_id, newline_id = len(texts), len(texts) + 1, 0, 0
    def encode(self, text):
      return list(range(len(texts)))
    def decode(self, ids):
      return "".join(texts[i] if i < len(texts) else "" for i in ids)
  tok = Tok()
  tok.prompt_format = None
  e = batches.encode_example(tok, "q", "".join(texts), "mask")
  assert e.loss_mask == [not m for m in mask] + [True]  # eos is trained on
  b = batches.make_batch([batches.Example([0], e.completion, e.loss_mask)], 40, tok.pad_id)
  assert b["targets"][0, 1:len(texts) + 2].tolist() == e.loss_mask
  assert batches.encode_example(tok, "q", "".join(texts), "train").loss_mask is None



def test_the_tool_writes_the_tokens_the_tokenizer_gives_an_annotation(tmp_path):
  # A SentencePiece tokenizer with byte fallback has two tokens for every digit; the tool
  # must write the one training text uses, or the model reads tokens it never saw.
  from s2jax.tasks import arith
  from s2jax.tokenizers import SentencePieceTokenizer, train_sentencepiece
  problems = arith.generate_split(arith.TaskConfig(), 300, seed=0)
  tok = SentencePieceTokenizer(train_sentencepiece(
      [p.question + "\n" + p.solution for p in problems], str(tmp_path / "sp"), 512))
  calc = calc_lib.Calculator.for_tokenizer(tok)
  for expr in ("17+17", "3*4", "2-9", "7/2", "9/4", "123*45"):
    text = f"x has {expr} = <<{expr}="
    value = calc_lib.format_value(calc_lib.exact_eval(expr))
    full = tok.encode(text + value + ">>" + value + " x.")
    head = tok.encode(text)
    assert full[:len(head)] == head
    assert calc.forced_tokens(expr) == full[len(head):len(head) + len(calc.forced_tokens(expr))]
    assert tok.decode(calc.forced_tokens(expr)) == value + ">>"


def test_a_refilled_row_starts_with_a_fresh_calculator():
  # "q" stops on "+" inside "<<3+"; "r", refilled into its row, writes "4=" with no "<<"
  # of its own, so an inherited open expression would make the tool write "7>>" there.
  successor = {"q": "<<", "<<": "3", "3": "+", "+": "4", "4": "=", "=": "9", "9": ">>",
               "7": ">>", ">>": "x", "x": "<eos>", "r": "4"}
  model, params = scripted_model(successor)
  sampler = Sampler(model, pad_id=0, eos_id=1, max_cache_len=48, calculator=toy_calculator())
  prompts = [[ID[c]] for c in "qrqrr"]
  for batch in (1, 2):
    kw = dict(batch_size=batch, max_new_tokens=12, stop_ids=(ID["+"],))
    fixed = sampler.generate_all(params, prompts, refill=False, **kw)
    assert sampler.generate_all(params, prompts, refill=True, **kw) == fixed
  assert [VOCAB[t] for t in fixed[0][0]] == ["<<", "3", "+"]
  assert [VOCAB[t] for t in fixed[1][0]] == ["4", "=", "9", ">>", "x", "<eos>"]
