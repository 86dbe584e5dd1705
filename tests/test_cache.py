"""xpiler.cache: stores, modes, checksums, concurrent writers, export/import, lockfile."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading

import pytest

from xpiler import cli
from xpiler.cache import Cache, CacheError, Lockfile, Store, _seal, hash_json
from xpiler.scons_build import reproducible_report


def test_hash_json_ignores_key_order_but_not_values():
    assert hash_json({"a": 1, "b": [1, 2]}) == hash_json({"b": [1, 2], "a": 1})
    assert hash_json({"a": 1}) != hash_json({"a": 2})
    assert len(hash_json({})) == 64


def test_roundtrip_and_modes(tmp_path):
    Store(tmp_path, "translation").set("k", {"text": "x"})
    assert Store(tmp_path, "translation").get("k") == {"text": "x"}
    ro = Store(tmp_path, "translation", "read-only")
    assert ro.set("k2", 1) is False and ro.get("k") == {"text": "x"}
    off = Store(tmp_path, "translation", "off")
    assert off.get("k") is None and off.set("k3", 1) is False
    refresh = Store(tmp_path, "translation", "refresh")
    assert refresh.get("k") is None  # never reads ...
    assert refresh.set("k", {"text": "y"}) is True  # ... but replaces
    rw = Store(tmp_path, "translation")
    assert rw.get("k") == {"text": "y"} and rw.get("k2") is None and rw.get("k3") is None
    with pytest.raises(CacheError):
        Store(tmp_path, "translation", "sometimes")


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_corrupt_entry_is_detected_dropped_and_rebuilt(tmp_path, damage):
    s = Store(tmp_path, "verification")
    good = _seal({"status": "verified", "max_abs_err": 0.0})
    bad = {"flip": good[:-3] + b"X" + good[-2:],  # a bit rot in the payload
           "truncate": good[: len(good) // 2],  # a writer killed mid-write
           "garbage": b"not an entry"}[damage]
    s.set_raw("k", bad)
    assert s.get("k") is None and s.corrupt == 1
    assert s.dc.get("k") is None  # dropped, so the next build rebuilds it
    s.set("k", {"status": "verified"})
    assert s.get("k") == {"status": "verified"}


def _writer(directory, wid, n):
    s = Store(directory, "translation")
    for i in range(n):
        s.set(f"w{wid}-{i}", {"writer": wid, "i": i, "pad": "x" * 200})
        s.set("shared", {"writer": wid, "i": i})  # contended key
    s.close()


def test_concurrent_writers_from_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(tmp_path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = Store(tmp_path, "translation")
    for w in range(4):
        for i in range(40):
            assert s.get(f"w{w}-{i}") == {"writer": w, "i": i, "pad": "x" * 200}
    assert s.get("shared")["writer"] in range(4)
    assert s.stats() == {"entries": 161, "bytes": s.stats()["bytes"], "corrupt": 0}


def test_cli_stats_export_import_clear(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    c = Cache(a)
    c["translation"].set("t1", {"text": "kernel"})
    c["llm"].set("l1", {"answer": "42"})
    c["tuning"].set_raw("broken", b"0" * 64 + b"\n{}")  # a corrupt entry is not exported
    c.close()
    assert cli.main(["cache", "stats", "--dir", str(a), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)["stores"]
    assert stats["translation"]["entries"] == 1 and stats["tuning"]["corrupt"] == 1
    out = tmp_path / "export.jsonl"
    assert cli.main(["cache", "export", str(out), "--dir", str(a)]) == 0
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert sorted((l["store"], l["key"]) for l in lines) == [("llm", "l1"), ("translation", "t1")]
    assert cli.main(["cache", "import", str(out), "--dir", str(b)]) == 0
    assert Cache(b)["llm"].get("l1") == {"answer": "42"}
    assert cli.main(["cache", "clear", "--dir", str(b), "--store", "llm"]) == 0
    cb = Cache(b)
    assert cb["llm"].get("l1") is None and cb["translation"].get("t1") == {"text": "kernel"}
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    assert cli.main(["cache", "import", str(tmp_path / "bad.jsonl"), "--dir", str(b)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


def test_lockfile_concurrent_updates_are_all_kept_and_sorted(tmp_path):
    lock = tmp_path / "xpiler.lock"

    def add(i):
        Lockfile(lock).update(f"kernels/k{i:02}.cu", "cpu", f"key{i}", f"text {i}\n", {"verified": True})

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = lock.read_text().splitlines()
    assert [json.loads(l)["kernel"] for l in lines] == [f"kernels/k{i:02}.cu" for i in range(12)]
    e = Lockfile(lock).get("kernels/k03.cu", "cpu")
    assert e["key"] == "key3" and e["text"] == "text 3\n"
    assert Lockfile(lock).get("kernels/k03.cu", "mlu") is None
    before = lock.read_bytes()
    add(3)  # same entry again: the file does not change
    assert lock.read_bytes() == before


def test_lockfile_detects_an_edited_entry(tmp_path):
    lock = tmp_path / "xpiler.lock"
    Lockfile(lock).update("kernels/a.cu", "cpu", "k", "original\n", {})
    lock.write_text(lock.read_text().replace("original", "tampered"))
    with pytest.raises(CacheError, match="kernels/a.cu -> cpu is corrupt"):
        Lockfile(lock).get("kernels/a.cu", "cpu")


def test_reproducible_report_drops_timings_and_absolute_paths():
    root = os.getcwd()
    report = {"seconds": {"translate": 0.2}, "verification": {"seconds": 3.1, "status": "verified",
                                                             "reason": f"{root}/kernels/a.cu:3: ok"},
              "passes": [{"name": "print", "seconds": 1}]}
    clean = reproducible_report(report, [root])
    assert clean == {"verification": {"status": "verified", "reason": "kernels/a.cu:3: ok"},
                     "passes": [{"name": "print"}]}
    assert root not in json.dumps(clean)
