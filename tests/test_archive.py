"""s2jax.archive: what a save copies, keeps and merges, by hand cases."""
import json
import os

from s2jax import archive, report


def _write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(text)


def _line(id_, status, **kw):
  r = {"id": id_, "status": status, "what": "x", **kw}
  if status == "started":
    r.update(started="2026-01-01T00:00:00Z", pid=kw.get("pid", -1), command="c", commit="k")
  return r


def test_launch_logs_are_unioned_and_open_launches_closed():
  start = 1767225600.0  # 2026-01-01T00:00:00Z
  a = [_line("a", "started"), _line("a", "ok", seconds=5.0), _line("b", "started")]
  live = [_line("a", "started"), _line("a", "ok", seconds=5.0), _line("c", "started"),
          _line("mine", "started", pid=os.getpid())]
  merged = archive.merge_launches(a, live, now=start + 30)
  assert [(r["id"], r["status"]) for r in merged] == [
      ("a", "started"), ("a", "ok"), ("b", "started"), ("c", "started"),
      ("mine", "started"), ("b", "unfinished"), ("c", "unfinished")]
  assert merged[-1]["seconds"] == 30.0
  # A later save that brings b's end line: it comes after the "unfinished" one, so the
  # launch reads as it really ended.
  later = archive.merge_launches(merged, [_line("b", "started"),
                                          _line("b", "failed", seconds=7.0)], now=start + 60)
  by_id = {}
  for r in later:
    by_id.setdefault(r["id"], {}).update(r)
  assert by_id["b"]["status"] == "failed" and by_id["b"]["seconds"] == 7.0
  assert by_id["a"]["status"] == "ok" and by_id["c"]["status"] == "unfinished"


def test_an_open_launch_is_closed_at_its_last_sign_of_life(tmp_path):
  start = 1767225600.0  # 2026-01-01T00:00:00Z
  live = str(tmp_path)
  _write(os.path.join(live, report.HEARTBEATS, "beating"), f"{start + 12}\n")
  nxt = dict(_line("next", "started"), started="2026-01-01T00:01:40Z")  # start + 100 s
  lines = [_line("beating", "started"), _line("old", "started"), nxt,
           _line("next", "ok", seconds=1.0)]
  merged = archive.merge_launches([], lines, now=start + 10_000, live_workdir=live)
  closed = {r["id"]: r for r in merged if r["status"] == "unfinished"}
  assert sorted(closed) == ["beating", "old"]
  assert closed["beating"]["seconds"] == 12.0  # its heartbeat, not the save's time
  # No heartbeat (a launch by older code): at most until the next launch started.
  assert closed["old"]["seconds"] == 100.0 and "at most" in closed["old"]["error"]


def test_a_save_copies_small_files_and_names_what_it_replaced(tmp_path):
  live, arch = str(tmp_path / "live"), str(tmp_path / "arch")
  _write(os.path.join(live, "seed0", "sft", "checkpoints", "1", "params"), "weights")
  _write(os.path.join(live, "seed0", "sft", "metrics.json"), '{"acc": 0.5}')
  _write(os.path.join(live, "seed0", "sft", "run_info.json"), '{"started": "first"}')
  _write(os.path.join(live, "seed0", "big.jsonl"), "x" * 100)
  first = archive.save(live, arch, max_bytes=50)
  assert sorted(first["added"]) == ["seed0/sft/metrics.json", "seed0/sft/run_info.json"]
  assert first["too_large"] == [{"path": "seed0/big.jsonl", "bytes": 100}]
  assert not os.path.exists(os.path.join(arch, "seed0", "sft", "checkpoints"))
  # Saving again changes nothing; a changed result replaces the archived one and says so;
  # the run's first run_info stays.
  assert archive.save(live, arch, max_bytes=50)["added"] == []
  _write(os.path.join(live, "seed0", "sft", "metrics.json"), '{"acc": 0.6}')
  _write(os.path.join(live, "seed0", "sft", "run_info.json"), '{"started": "second"}')
  third = archive.save(live, arch, max_bytes=50)
  assert [r["path"] for r in third["replaced"]] == ["seed0/sft/metrics.json"]
  assert json.load(open(os.path.join(arch, "seed0", "sft", "metrics.json"))) == {"acc": 0.6}
  assert json.load(open(os.path.join(arch, "seed0", "sft", "run_info.json"))) == {
      "started": "first"}
  saves = [json.loads(x) for x in open(os.path.join(arch, archive.SAVES))]
  assert len(saves) == 3 and saves[2]["replaced"] == third["replaced"]
  # A launch log in the archive reads like the live one, its open launch closed.
  with report.launch(os.path.join(live, "job"), "step"):
    pass
  _write(os.path.join(live, "job", report.LAUNCHES),
         open(os.path.join(live, "job", report.LAUNCHES)).read()
         + json.dumps(_line("gone", "started")) + "\n")
  archive.save(live, arch)
  got = {r["id"]: r["status"] for r in report.read_launches(os.path.join(arch, "job"))}
  assert sorted(got.values()) == ["ok", "unfinished"] and got["gone"] == "unfinished"
