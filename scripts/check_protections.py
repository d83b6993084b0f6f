"""Remove one protection at a time, in a throwaway copy of the repo, and run the tests that guard it: each must fail.

`.venv/bin/python scripts/check_protections.py [INDEX ...]` prints one JSON line per (protection, test); "failed": true
means the test caught the missing protection. It exits 1 when a test still passes without its protection. The working
tree is never touched. One copy of the repo is made; each mutation is applied, its tests run in one pytest process
(a test stuck for TEST_TIMEOUT_S counts as caught: the protection's absence made it hang), then the files are restored.
"""
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
TEST_TIMEOUT_S = 180
T = "tests/test_security.py::"
F = "tests/test_faults.py::"
MUTATIONS = [
 ("display name keeps path parts", "workbench/datasets.py",
  'base = (name or "").replace("\\\\", "/").rsplit("/", 1)[-1]', 'base = name or ""',
  [T + "test_upload_name_with_path_parts_stays_a_display_name", "tests/test_datasets.py::test_file_name_never_becomes_a_path"]),
 ("notes rendered as raw HTML", "pages/data.py", "    st.info(note)", "    st.markdown(note, unsafe_allow_html=True)",
  [T + "test_html_in_names_and_values_is_plain_text_in_app_test", T + "test_html_in_names_and_values_never_runs_in_a_browser"]),
 ("size checked after reading", "workbench/ingest.py",
  "    check_size(path.stat().st_size)\n    return path.read_bytes()", "    data = path.read_bytes()\n    check_size(len(data))\n    return data",
  [T + "test_oversized_file_is_refused_before_it_is_read"]),
 ("formulas not neutralised", "workbench/safe_csv.py", "return neutralise_formulas(frame).to_csv(index=False)",
  "return frame.to_csv(index=False)", [T + "test_cli_predict_neutralises_formulas", T + "test_predict_page_download_neutralises_formulas"]),
 ("skops loads any type", "workbench/artifacts.py", "    if unexpected:\n        raise UserError(f\"The saved file",
  "    if False:\n        raise UserError(f\"The saved file", [T + "test_tampered_skops_file_is_refused_and_nothing_runs"]),
 ("a page without its own access check", "pages/runs.py",
  "require_access(logout_button=False)  # also when Streamlit runs this file without app.py\n", "",
  [T + "test_a_page_run_without_app_py_asks_for_the_password_too"]),
 ("pickle in a module", "workbench/predict.py", "from __future__ import annotations\n",
  "from __future__ import annotations\nimport pickle\n_ = pickle.loads\n", [T + "test_no_code_path_unpickles_or_evaluates"]),
 ("XSRF off", ".streamlit/config.toml", "enableXsrfProtection = true", "enableXsrfProtection = false",
  [T + "test_upload_limit_and_server_settings_stay_safe"]),
 ("no busy timeout", "workbench/store/api.py", "BUSY_TIMEOUT_MS = 60_000", "BUSY_TIMEOUT_MS = 0",
  ["tests/test_store.py::test_busy_database_waits_instead_of_failing"]),
 ("dataset temp file left on failure", "workbench/datasets.py", "        Path(tmp).unlink(missing_ok=True)\n", "        pass\n",
  ["tests/test_datasets.py::test_full_disk_leaves_no_half_written_dataset"]),
 ("run temp folder left on failure", "workbench/artifacts.py", "        shutil.rmtree(tmp, ignore_errors=True)\n", "        pass\n",
  [F + "test_full_disk_while_saving_a_model_leaves_no_half_written_run"]),
 ("run exceptions not caught (runner and worker)", [
    ("workbench/runner.py", "    except Exception as exc:\n        log.exception", "    except ZeroDivisionError as exc:\n        log.exception"),
    ("workbench/jobs.py", "    except Exception as exc:  # a bug", "    except ZeroDivisionError as exc:  # a bug")], None, None,
  [F + "test_failed_diverged_and_out_of_memory_runs_say_why_on_the_runs_page", "tests/test_jobs.py::test_failing_run_is_recorded_and_next_run_completes"]),
 ("no divergence check", "workbench/training.py", "            if not math.isfinite(train_loss):", "            if False:",
  [F + "test_failed_diverged_and_out_of_memory_runs_say_why_on_the_runs_page"]),
 ("no OOM retry", "workbench/training.py", "        except torch.cuda.OutOfMemoryError:", "        except ZeroDivisionError:",
  [F + "test_out_of_memory_halves_the_batch_and_goes_on"]),
 ("Runs page hides the message", "ui/tables.py", '            "Message": [r.error or "" for r in runs],', "",
  [F + "test_failed_diverged_and_out_of_memory_runs_say_why_on_the_runs_page"]),
 ("claim without compare-and-set", "workbench/store/api.py", ".where(RunRow.id == run_id, RunRow.status == RunStatus.QUEUED)",
  ".where(RunRow.id == run_id)", ["tests/test_store.py::test_claim_is_compare_and_set", "tests/test_jobs.py::test_twenty_runs_two_workers_each_run_exactly_once"]),
 ("stale runs never interrupted", "workbench/store/api.py",
  "if (row.heartbeat_at or row.started_at or cutoff) < cutoff or row.worker_id in dead_workers:", "if False:",
  ["tests/test_jobs.py::test_killed_worker_leaves_run_interrupted", "tests/test_store.py::test_stale_heartbeat_becomes_interrupted"]),
 ("worker in the server's session", "workbench/jobs.py",
  "stdin=subprocess.DEVNULL, start_new_session=True,", "stdin=subprocess.DEVNULL, start_new_session=False,",
  [F + "test_server_killed_and_restarted_while_a_run_trains"]),
]


def run_tests(copy: Path, tests: list[str]) -> dict[str, str]:
    """pytest once over the given node ids; the outcome of each ('passed', 'failed', 'error', 'skipped')."""
    done = subprocess.run(
        [str(SRC / ".venv/bin/python"), "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
         f"--timeout={TEST_TIMEOUT_S}", *tests],
        cwd=copy, capture_output=True, text=True, timeout=TEST_TIMEOUT_S * (len(tests) + 2))
    outcomes: dict[str, str] = {}
    for line in done.stdout.splitlines():
        match = re.match(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)", line)
        if match:
            node = match.group(2)
            for test in tests:  # a listed test may expand to several parametrised cases: any caught one counts
                if node == test or node.startswith(test + "["):
                    state = match.group(1).lower()
                    outcomes[test] = "failed" if "failed" in (state, outcomes.get(test)) else outcomes.get(test, state)
    return outcomes


def main() -> int:
    only = set(sys.argv[1:])
    copy = Path(tempfile.mkdtemp(prefix="protections-")) / "repo"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "bench-results",
                                                             ".pytest_cache", ".ruff_cache", "workbench-data"))
    (copy / ".venv").symlink_to(SRC / ".venv")
    results, started = [], time.monotonic()
    try:
        for i, (name, path, old, new, tests) in enumerate(MUTATIONS):
            if only and str(i) not in only:
                continue
            edits = [(path, old, new)] if isinstance(path, str) else path
            originals = {}
            for file, before, after in edits:
                target = copy / file
                originals.setdefault(target, target.read_text())
                current = target.read_text()
                assert current.count(before) == 1, (name, file, current.count(before))
                target.write_text(current.replace(before, after))
            try:
                outcomes = run_tests(copy, tests)
            finally:
                for target, text in originals.items():
                    target.write_text(text)
            for test in tests:
                outcome = outcomes.get(test, "not run")
                results.append({"mutation": name, "test": test, "failed": outcome in ("failed", "error"),
                                "outcome": outcome})
                print(json.dumps(results[-1]), flush=True)
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)
    missed = [r for r in results if not r["failed"]]
    print(f"{len(results) - len(missed)} of {len(results)} checks caught their missing protection "
          f"in {time.monotonic() - started:.0f} s", flush=True)
    for r in missed:
        print(f"NOT CAUGHT: {r['mutation']} -> {r['test']} ({r['outcome']})", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
