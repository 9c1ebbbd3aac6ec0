"""Checkpoint import/export and parity with Hugging Face transformers (PyTorch, CPU).

Tiny random Llama and Qwen2 (QKV bias) models are written by transformers as safetensors
and read back by s2jax; the real SmolLM2-135M-Instruct GGUF is loaded by both sides. Logits
must agree to fp32 rounding and greedy generations token for token.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from s2jax.data import gsm8k, prompts
from s2jax.models import convert
from s2jax.models.transformer import Transformer, forward
from s2jax.sampling import Sampler, left_pad
from s2jax.tokenizers import HFTokenizer, load_tokenizer

GSM8K_DIR = gsm8k.DEFAULT_DIR  # the release the package ships
TINY = dict(vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0,
            rms_norm_eps=1e-6, initializer_range=0.2)


def hf_logits(model, tokens, mask):
  positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
  with torch.no_grad():
    out = model(input_ids=torch.tensor(tokens, dtype=torch.long),
                attention_mask=torch.tensor(mask, dtype=torch.long),
                position_ids=torch.tensor(positions, dtype=torch.long))
  return out.logits.float().numpy()


def ragged_batch(vocab, lengths, seed=0):
  rng = np.random.default_rng(seed)
  return left_pad([rng.integers(3, vocab, n).tolist() for n in lengths], max(lengths), 0)


def s2jax_logits(cfg, params, tokens, mask):
  out = forward(Transformer(cfg), jax.tree.map(jnp.asarray, params), tokens, mask)
  return np.asarray(out.logits)


def hf_greedy(model, prompts_ids, new_tokens, pad_id, eos_id=None):
  width = max(len(p) for p in prompts_ids)
  tokens, mask = left_pad(prompts_ids, width, pad_id)
  with torch.no_grad():
    out = model.generate(input_ids=torch.tensor(tokens, dtype=torch.long),
                         attention_mask=torch.tensor(mask, dtype=torch.long), do_sample=False,
                         max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                         pad_token_id=pad_id)
  return out[:, width:].numpy()


def s2jax_greedy(cfg, params, prompts_ids, new_tokens, pad_id):
  sampler = Sampler(Transformer(cfg), pad_id=pad_id, eos_id=-1, max_cache_len=512)
  gen = sampler(jax.tree.map(jnp.asarray, params), prompts_ids, max_new_tokens=new_tokens)
  return gen.tokens


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny_hf(request, tmp_path_factory):
  torch.manual_seed(0)
  if request.param == "llama":
    config = transformers.LlamaConfig(**TINY, tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(config)
  else:
    config = transformers.Qwen2Config(**TINY, tie_word_embeddings=True)
    model = transformers.Qwen2ForCausalLM(config)
    with torch.no_grad():  # biases start at zero; make them matter
      for layer in model.model.layers:
        for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
          proj.bias.normal_(0, 0.5)
  model.eval()
  directory = tmp_path_factory.mktemp(request.param)
  model.save_pretrained(directory)
  return request.param, model, str(directory)


def test_tiny_checkpoints_import_with_matching_logits(tiny_hf):
  arch, model, directory = tiny_hf
  cfg, params = convert.load_hf_dir(directory)
  assert cfg.qkv_bias == (arch == "qwen2") and cfg.tie_embeddings == (arch == "qwen2")
  tokens, mask = ragged_batch(cfg.vocab_size, [5, 17, 11, 2])
  ours, ref = s2jax_logits(cfg, params, tokens, mask), hf_logits(model, tokens, mask)
  np.testing.assert_allclose(ours[mask], ref[mask], atol=2e-5, rtol=1e-5)


def test_tiny_checkpoints_greedy_generation_is_identical(tiny_hf):
  _, model, directory = tiny_hf
  cfg, params = convert.load_hf_dir(directory)
  rng = np.random.default_rng(1)
  ids = [rng.integers(3, cfg.vocab_size, n).tolist() for n in (4, 9, 6)]
  np.testing.assert_array_equal(s2jax_greedy(cfg, params, ids, 64, pad_id=0),
                                hf_greedy(model, ids, 64, pad_id=0))


def test_export_round_trip_loads_in_transformers(tiny_hf, tmp_path):
  arch, model, directory = tiny_hf
  cfg, params = convert.load_hf_dir(directory)
  convert.save_hf_dir(str(tmp_path), params, cfg)
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
  assert type(reloaded).__name__ == type(model).__name__
  tokens, mask = ragged_batch(cfg.vocab_size, [7, 3], seed=2)
  np.testing.assert_allclose(hf_logits(reloaded, tokens, mask)[mask],
                             s2jax_logits(cfg, params, tokens, mask)[mask], atol=2e-5)
  cfg2, params2 = convert.load_hf_dir(str(tmp_path))
  assert cfg2 == cfg
  jax.tree.map(np.testing.assert_array_equal, params2, params)


def test_mismatched_checkpoints_fail_with_the_tensor_named(tiny_hf, tmp_path):
  _, _, directory = tiny_hf
  cfg, params = convert.load_hf_dir(directory)
  state = convert.to_hf(params, cfg)
  missing = dict(state)
  del missing["model.layers.1.mlp.up_proj.weight"]
  with pytest.raises(ValueError, match="no tensor 'model.layers.1.mlp.up_proj.weight'"):
    convert.from_hf(missing, cfg)
  with pytest.raises(ValueError, match=r"embed_tokens.weight' has shape \(160, 64\), the "
                                       r"config expects \(100, 64\)"):
    convert.from_hf(state, cfg.__class__(**{**cfg.__dict__, "vocab_size": 100}))
  with pytest.raises(ValueError, match="does not use"):
    convert.from_hf({**state, "model.layers.2.mlp.up_proj.weight": np.zeros(1)}, cfg)
  with pytest.raises(FileNotFoundError, match="no config.json"):
    convert.load_hf_dir(str(tmp_path))
  with open(tmp_path / "config.json", "w") as f:
    json.dump({"model_type": "gpt_neox"}, f)
  with pytest.raises(ValueError, match="unsupported model_type 'gpt_neox'"):
    convert.load_hf_dir(str(tmp_path))


# ------------------------------------------------------------------ SmolLM2 (real GGUF)


@pytest.fixture(scope="module")
def smollm2():
  path = convert.smollm2_gguf_path()
  cfg, params = convert.load_gguf(path)
  hf = transformers.AutoModelForCausalLM.from_pretrained(
      os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()
  tok = HFTokenizer.from_gguf(path)
  return path, cfg, params, hf, tok


def test_smollm2_gguf_config(smollm2):
  _, cfg, _, _, tok = smollm2
  assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.mlp_dim) == (
      30, 576, 9, 3, 1536)
  assert cfg.tie_embeddings and cfg.rope_theta == 100000.0 and cfg.vocab_size == 49152
  assert 134e6 < cfg.num_params() < 135e6
  assert tok.vocab_size == cfg.vocab_size


def _chat_prompts(tok, n):
  tok.prompt_format = prompts.PromptFormat(kind="chat")
  questions = [r["question"] for r in gsm8k.load("test", data_dir=GSM8K_DIR, limit=n)]
  return [prompts.prompt_format(tok).ids(tok, q) for q in questions]


def test_smollm2_logits_match_transformers(smollm2):
  _, cfg, params, hf, tok = smollm2
  ids = _chat_prompts(tok, 3)
  ids = [ids[0], ids[1][:40], ids[2][:75]]  # three different lengths, left-padded
  tokens, mask = left_pad(ids, max(map(len, ids)), tok.pad_id)
  ours, ref = s2jax_logits(cfg, params, tokens, mask), hf_logits(hf, tokens, mask)
  scale = np.abs(ref[mask]).max()
  np.testing.assert_allclose(ours[mask], ref[mask], atol=1e-5 * scale, rtol=0)
  assert np.mean(ours[mask].argmax(-1) == ref[mask].argmax(-1)) == 1.0


def test_smollm2_greedy_64_tokens_identical(smollm2):
  _, cfg, params, hf, tok = smollm2
  ids = _chat_prompts(tok, 3)
  ours = s2jax_greedy(cfg, params, ids, 64, tok.pad_id)
  ref = hf_greedy(hf, ids, 64, tok.pad_id)
  np.testing.assert_array_equal(ours, ref)
  assert "Janet" in tok.decode(ours[0]) or "eggs" in tok.decode(ours[0])


def test_gguf_vocabulary_matches_transformers_tokenizer(smollm2, tmp_path):
  path, _, _, _, tok = smollm2
  ref = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path),
                                                   gguf_file=os.path.basename(path))
  records = gsm8k.load("test", data_dir=GSM8K_DIR, limit=200)
  lines = [line for r in records for line in (r["question"] + "\n" + r["answer"]).split("\n")]
  # transformers' GGUF reader drops llama.cpp's "smollm" digit split, which changes only
  # whitespace runs before a digit ("and  2"); s2jax keeps it, as the original does.
  plain = [s for s in lines if "  " not in s]
  assert len(plain) > 500
  assert all(tok.encode(s) == ref.encode(s, add_special_tokens=False) for s in plain)
  for r in records[:50]:
    text = r["question"] + "\n" + r["answer"]
    assert tok.decode(tok.encode(text)) == text
  messages = [{"role": "user", "content": "What is 2+2?"}]
  assert tok.apply_chat_template(messages) == ref.apply_chat_template(
      messages, tokenize=False, add_generation_prompt=True)
  assert tok.encode("<|im_start|>user\n") == [1, 4093, 198]
  # Exported next to a model, it loads in transformers and in s2jax alike.
  tok.save_hf(str(tmp_path))
  again = load_tokenizer(str(tmp_path))
  back = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
  text = records[0]["question"]
  assert again.encode(text) == tok.encode(text) == back.encode(text, add_special_tokens=False)
  assert again.chat_template == tok.chat_template and again.eos_id == tok.eos_id


def test_steps_tokenize_the_same_alone_and_in_context(smollm2):
  tok = smollm2[4]
  answer = gsm8k.load("test", data_dir=GSM8K_DIR, limit=3)[2]["answer"]
  steps = answer.split("\n")
  ids = tok.encode(answer)
  pieces, cur = [], []
  for i in ids + [tok.newline_id]:
    if i == tok.newline_id:
      pieces.append(cur)
      cur = []
    else:
      cur.append(i)
  assert pieces == [tok.encode(s) for s in steps]
  assert tok.encode("a\n\nb") == tok.encode("a") + tok.encode("\n\n") + tok.encode("b")
  assert len(tok.encode("\n\n")) == 1
