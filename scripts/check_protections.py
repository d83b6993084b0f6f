"""Remove one protection at a time, in a throwaway copy of the repo, and run the tests that guard it: each must fail.

`.venv/bin/python scripts/check_protections.py [INDEX ...] [--jobs N]` prints one JSON line per (protection, test); "failed": true
means the test caught the missing protection. It exits 1 when a test still passes without its protection. The working
tree is never touched. One copy of the repo per job; each mutation is applied, its tests run in one pytest process
(a test stuck for TEST_TIMEOUT_S counts as caught: the protection's absence made it hang), then the files are restored.
"""
import argparse
import json
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
TEST_TIMEOUT_S = 180
JOBS = 2
T = "tests/test_security.py::"
F = "tests/test_faults.py::"
P = "tests/test_pages.py::"
MUTATIONS = [
 ("display name keeps path parts", "workbench/datasets.py",
  'base = (name or "").replace("\\\\", "/").rsplit("/", 1)[-1]', 'base = name or ""',
  [T + "test_upload_name_with_path_parts_stays_a_display_name", "tests/test_datasets.py::test_file_name_never_becomes_a_path"]),
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
 ("worker in the server's session", "workbench/jobs.py",
  "stdin=subprocess.DEVNULL, start_new_session=True,", "stdin=subprocess.DEVNULL, start_new_session=False,",
  [F + "test_server_killed_and_restarted_while_a_run_trains"]),
 ("markdown escape removed from a page", "pages/data.py", '        st.warning(escape_markdown(warning["message"]))', '        st.warning(warning["message"])',
  [T + "test_every_text_a_page_renders_as_markdown_is_escaped", T + "test_file_contents_stay_text_in_a_browser"]),
 ("notes rendered as raw HTML", "ui/text.py", "        st.info(escape_markdown(note))", "        st.markdown(note, unsafe_allow_html=True)",
  [T + "test_html_in_names_and_values_is_plain_text_in_app_test", T + "test_file_contents_stay_text_in_a_browser"]),
 ("markdown not escaped", "ui/text.py", '    escaped = _ASCII_PUNCTUATION.sub(r"\\\\\\1", _PLUGIN_PATTERNS.sub(WORD_JOINER, line))', "    escaped = line",
  [T + "test_escaped_markdown_shows_the_same_characters_and_nothing_else", T + "test_streamlit_shows_escaped_markdown_as_its_characters"]),
 ("autolinks and shortcodes not broken", "ui/text.py", "_PLUGIN_PATTERNS.sub(WORD_JOINER, line)", "line",
  [T + "test_escaped_markdown_shows_the_same_characters_and_nothing_else", T + "test_streamlit_shows_escaped_markdown_as_its_characters"]),
 ("chart labels not escaped", "ui/charts.py", 'go.Bar(x=[chart_text(label) for label in hist["labels"]]', 'go.Bar(x=list(hist["labels"])',
  [T + "test_charts_show_names_and_labels_as_text", T + "test_file_contents_stay_text_in_a_browser"]),
 ("upload limit hard-coded", "ui/resources.py", "    return get_settings().max_upload_mb\n", "    return 200\n",
  [P + "test_upload_limit_follows_the_setting", T + "test_file_contents_stay_text_in_a_browser"]),
 ("server upload cap left at its default", "app.py", "mark_framed()\napply_upload_limit()\n", "mark_framed()\n",
  [P + "test_upload_limit_follows_the_setting"]),
 ("no limit on password guesses", "ui/auth.py", "    if wait > 0:\n", "    if False:\n",
  [T + "test_wrong_passwords_wait_longer_and_longer_in_every_tab"]),
 ("claim without compare-and-set", "workbench/store/api.py", ".where(RunRow.id == run_id, RunRow.status == RunStatus.QUEUED)", ".where(RunRow.id == run_id)", ["tests/test_store.py::test_claim_is_compare_and_set", "tests/test_jobs.py::test_twenty_runs_two_workers_each_run_exactly_once[sqlite]"]),
 ("claim without SKIP LOCKED", "workbench/store/api.py", ".with_for_update(skip_locked=True))", ")", ["tests/test_store.py::test_claim_skips_a_run_another_worker_is_claiming[postgresql]", "tests/test_jobs.py::test_twenty_runs_two_workers_each_run_exactly_once[postgresql]"]),
 ("claim waits on locked rows", "workbench/store/api.py", ".with_for_update(skip_locked=True))", ".with_for_update(skip_locked=False))", ["tests/test_store.py::test_claim_skips_a_run_another_worker_is_claiming[postgresql]"]),
 ("migration without lock or transaction (SQLite)", [("workbench/store/schema.py", "fcntl.flock(lock, fcntl.LOCK_EX)", "pass"), ("workbench/store/api.py", 'connection.exec_driver_sql("BEGIN")', "pass")], None, None, ["tests/test_store.py::test_processes_opening_a_fresh_database_at_once_all_get_it[sqlite]"]),
 ("ingest race loser fails", "workbench/store/api.py", ".on_conflict_do_nothing()", "", ["tests/test_datasets.py::test_four_processes_ingesting_one_file_at_once_lose_nothing"]),
 ("ingest attempts share one file", "workbench/datasets.py", 'file_name = f"{dataset_id}-{uuid.uuid4().hex[:8]}.parquet"', 'file_name = f"{dataset_id}.parquet"', ["tests/test_datasets.py::test_four_processes_ingesting_one_file_at_once_lose_nothing"]),
 ("missing dataset file not restored", "workbench/datasets.py", "        _restore_missing_file(store, existing, data)\n", "", ["tests/test_datasets.py::test_a_dataset_whose_file_went_missing_gets_it_back_when_the_bytes_come_again"]),
 ("dataset deleted under active runs", "workbench/store/api.py", "if active:", "if False:", ["tests/test_store.py::test_deleting_a_dataset_with_a_queued_or_running_run_is_refused", "tests/test_datasets.py::test_the_data_page_refuses_to_delete_a_dataset_that_a_run_is_training_on"]),
 ("no retry while the database is busy", "workbench/store/api.py", "if not _is_busy(exc):", "if True:", ["tests/test_store.py::test_busy_database_waits_instead_of_failing", "tests/test_jobs.py::test_a_run_survives_the_database_being_held_longer_than_the_busy_timeout"]),
 ("busy database dumps SQL", "workbench/store/api.py", "if left <= 0:\n", "if left <= 0:\n                    raise\n", ["tests/test_store.py::test_a_write_that_outlives_the_retry_budget_is_one_plain_sentence"]),
 ("worker start does not sweep temp folders", "workbench/jobs.py", "    sweep_run_temp_folders(store)\n", "", ["tests/test_jobs.py::test_worker_start_sweeps_half_written_models_of_runs_that_are_not_running"]),
 ("delete-run leaves temp folders", "workbench/jobs.py", 'for path in [runs_dir / run_id, *runs_dir.glob(f".{run_id}-*"), store', "for path in [runs_dir / run_id, store", ["tests/test_jobs.py::test_deleting_a_run_removes_its_half_written_model_too"]),
 ("stale runs never interrupted", "workbench/store/api.py", "stale = [r.id for r in running\n", "stale = [r.id for r in running if False\n", ["tests/test_store.py::test_stale_heartbeat_becomes_interrupted", "tests/test_jobs.py::test_killed_worker_leaves_run_interrupted"]),
 ("Runs page does not recover dead workers' runs", "pages/runs.py", "jobs.recover_stale_runs(store)  # once per page load: a dead worker's run reads as interrupted\n", "", ["tests/test_jobs.py::test_killed_worker_leaves_run_interrupted[sqlite]"]),
 ("run memory not estimated before queueing", "workbench/runner.py",
  "        memory.check(memory.estimate(spec, hyperparameters, memory.table_shapes(table, config, spec, task)), device)\n", "",
  ["tests/test_memory.py::test_a_default_transformer_on_2001_columns_is_refused_before_it_is_queued"]),
 ("run memory not checked with the prepared shapes", "workbench/runner.py",
  "        memory.check(memory.estimate(spec, resolved.hyperparameters, shapes), device, prepared=True)\n", "",
  ["tests/test_memory.py::test_the_prepared_shapes_are_checked_again_before_training"]),
 ("damaged saved model not refused plainly", "workbench/artifacts.py",
  "    except Exception as exc:  # whatever fails in reading files this app wrote: they were changed since",
  "    except ZeroDivisionError as exc:  # whatever fails in reading files this app wrote: they were changed since",
  ["tests/test_artifacts.py::test_a_damaged_run_folder_is_refused_in_one_sentence",
   "tests/test_artifacts.py::test_cli_predict_with_a_damaged_model_says_so_and_exits_2"]),
 ("profile sentinel back to -1e300", "workbench/profile.py",
  'features = _as_float(x).rank(method="dense").fillna(0).to_numpy(dtype="float64").reshape(-1, 1)',
  'features = _as_float(x).fillna(-1e300).to_numpy(dtype="float64").reshape(-1, 1)',
  ["tests/test_pages.py::test_data_page_takes_every_column_as_target_on_a_table_with_missing_numbers",
   "tests/test_properties.py::test_profile_with_every_column_as_target_never_raises"]),
 ("predict notes and row warnings removed", "workbench/predict.py",
  '        for row, problems in check.row_warnings.items():\n            warnings[row] = "; ".join(problems)\n        out["warnings"] = warnings\n        return Prediction(out, check.notes, renamed, outputs)',
  '        out["warnings"] = warnings\n        return Prediction(out, [], renamed, outputs)',
  ["tests/test_predict.py::test_a_typo_in_a_number_is_flagged_not_silently_imputed", "tests/test_cli.py::test_predict_notes_go_to_stderr_and_the_csv_to_stdout"]),
 ("a date in a number column becomes nanoseconds", "workbench/predict.py",
  "            numbers = np.full(len(values), np.nan)\n", '            numbers = values.astype("int64").to_numpy(dtype="float64")\n',
  ["tests/test_predict.py::test_a_number_column_that_holds_only_dates_is_refused"]),
 ("ingest forgets the number cells it read as missing", "workbench/ingest.py", "        _keep_unread(name, text, numbers, unread)\n", "",
  ["tests/test_predict.py::test_a_typo_in_a_number_is_flagged_not_silently_imputed", "tests/test_cli.py::test_predict_notes_go_to_stderr_and_the_csv_to_stdout"]),
 ("CLI prints control characters raw", "workbench/cli.py",
  '    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")\n                   for ch in str(text))',
  "    return str(text)", ["tests/test_cli.py::test_terminal_escapes_in_names_are_printed_escaped"]),
 ("a bad limit in the environment is an unexpected failure", "workbench/config.py",
  "    except ValueError:\n        value = math.nan", "    except ZeroDivisionError:\n        value = math.nan",
  ["tests/test_cli.py::test_a_bad_limit_in_the_environment_is_one_plain_error"]),
 ("classical probabilities lose the classes absent from training", "workbench/tasks.py",
  "        if proba.shape[1] == self.n_classes:\n            return proba\n", "        return proba\n",
  ["tests/test_tasks.py::test_an_estimator_that_never_saw_a_class_still_gives_every_class_a_column",
   "tests/test_properties.py::test_every_model_trains_one_epoch_or_says_why_and_predicts_its_own_rows[logistic_regression]"]),
 ("runs page: a delete confirmation belongs to exactly the runs chosen", "pages/runs.py",
  'key=f"delete.confirm.{chosen_digest}")', 'key="delete.confirm")',
  ["tests/test_page_runs.py::test_a_confirmation_belongs_to_the_runs_it_was_given_for"]),
 ("run page: delete needs the confirmation", "pages/run.py",
  'if st.button("Delete", disabled=not confirmed, key=f"run.delete.{run.id}") and confirmed:',
  'if st.button("Delete", disabled=False, key=f"run.delete.{run.id}"):',
  ["tests/test_page_run.py::test_delete_needs_confirmation_then_says_so_and_forgets_the_address"]),
 ("groups on different rows are compared", "workbench/evaluation/paired.py", "    if first.scheme_key != second.scheme_key:",
  "    if False:", ["tests/test_evaluation.py::test_groups_on_different_rows_are_refused_with_a_reason"]),
 ("single runs on different test rows are compared", "workbench/evaluation/paired.py",
  "    if first.test_key != second.test_key or len(first.y) != len(second.y) or not np.array_equal(first.y, second.y):",
  "    if False:", ["tests/test_evaluation.py::test_runs_on_different_test_rows_are_refused"]),
 ("no Nadeau-Bengio variance correction", "workbench/evaluation/paired.py",
  "    scale = sd * math.sqrt(1 / j + test_share) if j > 1 else math.inf",
  "    scale = sd * math.sqrt(1 / j) if j > 1 else math.inf",
  ["tests/test_evaluation.py::test_corrected_t_is_the_nadeau_bengio_formula"]),
 ("ranking mixes items tested on other rows", "workbench/evaluation/ranking.py",
  "    ranked = [item for item, key in zip(items, keys, strict=True) if key == common]", "    ranked = list(items)",
  ["tests/test_evaluation.py::test_rank_marks_ties_with_the_best_and_refuses_other_rows"]),
 ("quick start queues some runs before all are validated", "workbench/jobs.py",
  "        resolved.append(validate_config(config, tables[config.dataset_id]))\n",
  "        resolved.append(validate_config(config, tables[config.dataset_id]))\n        store.create_run(config.to_dict(), model=config.model, target=config.target, task=resolved[-1].task, params=resolved[-1].params)\n",
  ["tests/test_quickstart.py::test_submit_runs_queues_all_or_none"]),
 ("export README shows names outside code spans", "workbench/predict.py",
  '    return f"{fence}{pad}{value}{pad}{fence}"', "    return value",
  ["tests/test_predict.py::test_the_readme_says_what_the_model_is_and_shows_names_only_as_code"]),
 ("export README keeps control characters", "workbench/predict.py",
  '    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")\n                   for ch in str(text))\n\n\ndef _code',
  '    return str(text)\n\n\ndef _code',
  ["tests/test_predict.py::test_the_readme_says_what_the_model_is_and_shows_names_only_as_code"]),
 ("an unexpected page error shows a traceback", "app.py",
  "with guarded():  # an unexpected error on any page: one sentence and a reference id, never a traceback\n    navigation.run()",
  "if True:\n    navigation.run()",
  ["tests/test_pages.py::test_an_unexpected_error_is_one_sentence_with_a_reference"]),
 ("time split trains on later rows", "workbench/prepare.py",
  "    if order is not None:\n        return _split_in_order(index, order, config)\n", "",
  ["tests/test_prepare.py::test_time_split_tests_on_exactly_the_latest_rows"]),
 ("rows with no date kept in a time split", "workbench/prepare.py",
  "            data, order = data[order.notna()], order[order.notna()]\n", "            pass\n",
  ["tests/test_prepare.py::test_time_split_tests_on_exactly_the_latest_rows"]),
 ("test predictions kept inside the exported model folder", "workbench/jobs.py",
  '    return store.settings.test_predictions_dir / f"{run_id}.npz"',
  '    return store.settings.runs_dir / run_id / "test-predictions.npz"',
  ["tests/test_cli.py::test_train_json_shape_and_run_commands"]),
 ("a member trains on a table its folds were not made for", "workbench/runner.py",
  "    if assignment.n_rows != len(index):", "    if False:",
  ["tests/test_groups.py::test_a_member_refuses_a_table_that_is_not_the_one_its_folds_were_made_for"]),
 ("sweep slots never overshoot", "workbench/store/api.py",
  "SweepRow.cancel_requested.is_(False), SweepRow.trials_started < SweepRow.n_trials)",
  "SweepRow.cancel_requested.is_(False))",
  ["tests/test_sweeps.py::test_store_never_hands_out_more_slots_than_trials"]),
 ("dataset delete waits for its running sweep", "workbench/store/api.py", "            if sweeping:\n",
  "            if False:\n", ["tests/test_sweeps.py::test_deleting_a_dataset_waits_for_its_running_sweep"]),
 ("a killed worker's trial is failed, not hung", "workbench/sweeps.py",
  "        if run is not None and run.is_final:\n            _tell(study, trial.number, run, plan.metric)",
  "        if False:\n            pass", ["tests/test_sweeps.py::test_a_killed_workers_trial_does_not_hang_the_sweep"]),
 ("a cancelled sweep starts no trial", "workbench/store/api.py",
  "                .where(SweepRow.id == sweep_id, SweepRow.status == SweepStatus.RUNNING,\n"
  "                       SweepRow.cancel_requested.is_(False), ",
  "                .where(SweepRow.id == sweep_id,\n                       ",
  ["tests/test_sweeps.py::test_cancel_stops_the_running_trial_and_starts_no_more"]),
 ("workers wait for OpenMP work by sleeping", "workbench/__main__.py",
  "passive_openmp_threads()  # before torch or scikit-learn loads OpenMP\n", "",
  ["tests/test_hugepages.py::test_workers_and_the_cli_wait_for_openmp_work_by_sleeping"]),
 ("explain step never fails the run", "workbench/explain.py",
  '        log.exception("explaining run %s failed; the run keeps its result without importance", run_id)\n'
  '        return None', "        raise",
  ["tests/test_explain.py::test_a_failing_importance_step_leaves_the_run_succeeded_without_importance"]),
 ("explanation row cap", "workbench/contributions.py", "    if n_rows > MAX_EXPLAINED_ROWS:", "    if False:",
  ["tests/test_contributions.py::test_more_than_the_cap_is_refused_in_one_sentence"]),
 ("benchmark table file checked against its wheel", "benchmarks/tables.py", "    if digest != entry.hash.value:\n",
  "    if False:\n", ["tests/test_benchmarks.py::test_a_table_file_must_be_the_one_its_wheel_shipped"]),
 ("tabm averages probabilities, not logits", "workbench/tasks.py",
  "            output = self.members_mean(torch.from_numpy(output).double()).numpy()",
  "            output = output.mean(axis=1)",
  ["tests/test_tabm.py::test_ensemble_predictions_are_the_mean_of_the_members_predictions"]),
 ("small training steps run on one thread", "workbench/devices.py",
  "    if threads == 1 or step_flops >= ONE_THREAD_BELOW_FLOPS:", "    if True:",
  ["tests/test_training.py::test_small_steps_train_on_one_thread_and_large_ones_on_every_thread"]),
 ("the automatic PBLD scale not chosen from the training rows", "workbench/runner.py",
  "    params = params.for_rows(len(prepared.y[\"train\"]))\n", "",
  ["tests/test_recipe.py::test_pbld_scale_is_the_spread_of_the_starting_frequencies_chosen_from_the_training_rows"]),
 ("a forest predicts the same rows the same every time", "workbench/tasks.py",
  "            estimator.set_params(n_jobs=1)\n", "            pass\n",
  ["tests/test_tasks.py::test_a_forest_built_on_every_thread_predicts_the_same_rows_the_same_every_time"]),
 ("workers share the cores", "workbench/devices.py", "    if workers > 1:\n        torch.set_num_threads", "    if False:\n        torch.set_num_threads",
  ["tests/test_devices.py::test_each_of_several_workers_trains_on_its_share_of_the_cores"]),
 ("ONNX export not checked against the workbench", "workbench/onnx_export.py", "    if not check.passed:\n", "    if False:\n",
  ["tests/test_onnx_export.py::test_a_bundle_that_would_predict_otherwise_is_refused",
   "tests/test_page_run_onnx.py::test_a_refused_onnx_export_is_one_sentence_on_the_predict_page"]),
 ("bundle CSV formulas not neutralised", "workbench/onnx_bundle/predict.py",
  "    if isinstance(text, str) and text.startswith(FORMULA_PREFIXES) and _number(text) is None:\n",
  "    if False:\n", ["tests/test_onnx_export.py::test_the_bundles_predict_script_writes_csv_that_a_spreadsheet_cannot_run"]),
 ("ray cluster not probed before connecting", "workbench/ray_executor.py",
  "        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()\n", "        pass\n",
  ["tests/test_ray_executor.py::test_unreachable_cluster_is_one_plain_error_at_once"]),
 ("ensemble member folder named outside its own", "workbench/models/ensemble.py",
  '        if not all(isinstance(m["run_id"], str) and RUN_ID.fullmatch(m["run_id"]) for m in members):',
  '        if False:',
  ["tests/test_ensemble.py::test_a_saved_ensemble_naming_a_member_outside_its_folder_is_refused"]),
 ("ensemble links its members instead of copying them", "workbench/artifacts.py",
  '                shutil.copytree(folder, tmp / MEMBERS_DIR / run_id)',
  '                (tmp / MEMBERS_DIR).mkdir(exist_ok=True)\n                (tmp / MEMBERS_DIR / run_id).symlink_to(folder.resolve())',
  ["tests/test_ensemble.py::test_an_ensemble_run_trains_scores_predicts_explains_exports_and_outlives_its_members[regression]",
   "tests/test_ensemble.py::test_an_ensemble_run_trains_scores_predicts_explains_exports_and_outlives_its_members[multiclass]"]),
 ("ensemble members on other rows", "workbench/ensembles.py",
  '        if not (np.array_equal(kept[split].rows, rows.ids[split]) and np.array_equal(kept[split].y, rows.y[split])):',
  '        if False:',
  ["tests/test_ensemble.py::test_an_ensemble_needs_two_runs_on_the_same_rows",
   "tests/test_ensemble.py::test_a_repeat_of_an_ensemble_chooses_from_the_runs_on_its_fold"]),
 ("API token not checked", "workbench/serving.py",
  "        if not hmac.compare_digest(given.encode(), token.encode()):  # in constant time\n", "        if False:\n",
  ["tests/test_serving.py::test_without_the_token_only_health_and_docs_answer"]),
 ("reachable address served without a token", "workbench/serving.py",
  "    if not is_loopback(host) and not token:\n", "    if False:\n",
  ["tests/test_serving.py::test_a_reachable_address_needs_a_token"]),
 ("no API request size limit", "workbench/serving.py",
  "    limit = max_request_bytes or store.settings.max_upload_bytes\n", "    limit = 10**15\n",
  ["tests/test_serving.py::test_an_oversize_body_is_413_declared_or_streamed"]),
 ("streamed API body not counted", "workbench/serving.py",
  "        if size > limit:\n            raise too_large\n", "",
  ["tests/test_serving.py::test_an_oversize_body_is_413_declared_or_streamed"]),
 ("raw prediction rows kept without WORKBENCH_LOG_ROWS=1", "workbench/monitoring.py",
  'return os.environ.get(LOG_ROWS_VARIABLE, "").strip() == "1"', "return True",
  ["tests/test_monitoring.py::test_cli_predict_records_a_summary_without_rows_and_monitor_reports_it",
   "tests/test_monitoring.py::test_rows_are_kept_in_parquet_only_when_turned_on"]),
 ("prediction batches outlive their run (no ON DELETE CASCADE)", "workbench/store/migrations/versions/0005_prediction_batches.py",
  'sa.ForeignKey("runs.id", ondelete="CASCADE")', 'sa.ForeignKey("runs.id")',
  ["tests/test_monitoring.py::test_deleting_a_run_deletes_its_batches_and_their_files",
   "tests/test_store.py::test_prediction_batches_are_listed_newest_first_counted_per_run_and_go_with_their_run"]),
 ("a deleted run's logged rows and reference left on disk", "workbench/jobs.py",
  ", store.settings.monitoring_dir / run_id]", "]",
  ["tests/test_monitoring.py::test_deleting_a_run_deletes_its_batches_and_their_files"]),
 ("logging a batch can fail the prediction", "workbench/monitoring.py",
  "    except Exception as exc:  # one line, also on the CLI's stderr; the traceback at debug level",
  "    except ZeroDivisionError as exc:  # one line, also on the CLI's stderr; the traceback at debug level",
  ["tests/test_monitoring.py::test_logging_never_fails_a_prediction"]),
 ("a kept preparation reused for another split, target or encoding", "workbench/runner.py",
  "        if self._prepared is None or self._key != key:", "        if self._prepared is None:",
  ["tests/test_runner.py::test_a_preparation_is_not_reused_for_anything_it_reads"]),
 ("a rewritten dataset file's old table reused", "workbench/jobs.py",
  "(str(path), stat.st_size, stat.st_mtime_ns)", "str(path)",
  ["tests/test_jobs.py::test_a_worker_reads_an_unchanged_table_once_and_a_changed_file_again"]),
 ("a run's notes added to the kept preparation's", "workbench/runner.py",
  "return replace(self._prepared, notes=list(self._prepared.notes))", "return self._prepared",
  ["tests/test_runner.py::test_a_workers_next_trial_reuses_the_preparation_and_scores_exactly_as_without_it"]),
 ("naive times after one with an offset take that offset (pandas' one-call parse)", "workbench/dates.py",
  "    if not with_offset.any() or with_offset[text.notna()].all():", "    if True:",
  ["tests/test_dates.py::test_a_naive_time_after_one_with_an_offset_keeps_its_own_clock",
   "tests/test_dates.py::test_a_csv_mixing_offsets_and_naive_times_ingests_each_time_as_written"]),
 ("waiting monitoring batches lost on a clean stop", "workbench/serving.py",
  "            on_stop()\n", "            pass\n",
  ["tests/test_serving.py::test_a_cleanly_stopped_server_logs_the_requests_still_waiting"]),
 ("BatchRecorder.close drops what still waits", "workbench/monitoring.py",
  "        self._thread.join()\n        self._write(self._take())", "        self._thread.join()",
  ["tests/test_monitoring.py::test_a_recorder_logs_many_small_batches_as_one_and_loses_none_on_close"]),
 ("API docs load their scripts from a CDN", "workbench/serving.py",
  "    app = FastAPIOffline(", "    app = __import__('fastapi').FastAPI(",
  ["tests/test_serving.py::test_the_docs_load_their_scripts_and_styles_from_the_app_itself"]),
 ("robust scaling overflows to NaN on huge numbers", "workbench/prepare.py",
  "    third = np.clip(scaled, -1e300, 1e300) / 3.0", "    third = scaled / 3.0",
  ["tests/test_recipe.py::test_robust_scaling_never_overflows_to_nan"]),
 ("dates written as numbers read month first whatever the column shows", "workbench/dates.py",
  '    return bool((first > 12).any() or (parts[1] == ".").mean() > 0.5)', "    return False",
  ["tests/test_dates.py::test_every_date_of_a_column_written_as_numbers_reads_as_written",
   "tests/test_predict.py::test_a_column_of_day_first_dates_is_read_day_first_at_prediction_too",
   "tests/test_profile.py::test_a_column_of_text_dates_one_per_row_is_dates_not_an_identifier"]),
 ("a prediction reads a day-first column month first", "workbench/predict.py",
  "unread.get(name), name in features.datetime_day_first)", "unread.get(name), False)",
  ["tests/test_predict.py::test_a_column_of_day_first_dates_is_read_day_first_at_prediction_too"]),
 ("currency and per cent signs kept in numbers", "workbench/ingest.py",
  "    if signed:\n        present = _without_signs(present)", "    if False:\n        present = _without_signs(present)",
  ["tests/test_ingest.py::test_numbers_written_with_a_currency_or_per_cent_sign_read_as_the_numbers"]),
 ("accounting's bracketed negatives read as positive", "workbench/ingest.py",
  'unsigned.str.replace(_BRACKETED, r"-\\1"', 'unsigned.str.replace(_BRACKETED, r"\\1"',
  ["tests/test_ingest.py::test_numbers_written_with_a_currency_or_per_cent_sign_read_as_the_numbers"]),
 ("a target with a class per row taken as classes", "workbench/prepare.py",
  "    return distinct > 2 and distinct > y.notna().sum() / 2\n", "    return False\n",
  ["tests/test_prepare.py::test_a_target_with_most_values_once_is_refused_as_classes_and_read_as_numbers"]),
 ("a run stopped by its data exits 0", "workbench/cli.py",
  "    return _exit_status(run)\n", "    return 0\n",
  ["tests/test_cli.py::test_a_run_stopped_by_its_data_exits_2_with_its_sentence"]),
 ("drift moments square huge numbers", "workbench/monitoring.py",
  "    scaled = present / scale\n", "    scaled, scale = present, 1.0\n",
  ["tests/test_monitoring.py::test_moments_of_huge_numbers_stay_finite_and_json"]),
 ("'no end date' sentinels turn a date column into text", "workbench/ingest.py",
  "parsed.notna().sum() + far.sum() <", "parsed.notna().sum() <",
  ["tests/test_ingest.py::test_dates_pandas_cannot_hold_keep_their_column_a_date_column_and_are_noted"]),
 ("a lone year taken for a date outside the range", "workbench/dates.py",
  ' and \\\n                re.search(r"\\d", value.replace(years[0], "", 1)):', ":",
  ["tests/test_dates.py::test_a_lone_year_or_words_are_not_dates_outside_the_range"]),
 ("spreadsheet errors make a number column text", "workbench/ingest.py",
  '"missing"} | SPREADSHEET_ERRORS', '"missing", "#n/a"}',
  ["tests/test_ingest.py::test_spreadsheet_error_values_are_missing_with_one_note_a_column"]),
 ("no-break spaces between thousands not read", "workbench/ingest.py",
  'present.str.replace(_SPACES, " ", regex=True)', "present",
  ["tests/test_ingest.py::test_numbers_with_spaces_or_apostrophes_between_thousands_read_as_the_numbers"]),
 ("values spelt in other capitals not pointed out", "workbench/profile.py",
  '        if kind == "categorical" and (spellings := _spellings(present)):', "        if False:",
  ["tests/test_profile.py::test_values_that_differ_only_in_capitals_or_spaces_are_pointed_out"]),
 ("a column of far dates profiled as NaT", "workbench/profile.py",
  "        if dates.empty:  # every date", "        if False:  # every date",
  ["tests/test_profile.py::test_a_column_of_dates_pandas_cannot_hold_has_no_statistics_rather_than_nat"]),
 ("a date target taken as classes", "workbench/prepare.py",
  "    if ptypes.is_datetime64_any_dtype(y):\n        raise UserError(f\"The target '{y.name}' holds dates",
  "    if False:\n        raise UserError(f\"The target '{y.name}' holds dates",
  ["tests/test_prepare.py::test_a_date_target_is_refused_in_one_sentence_whatever_the_task"]),
 ("an input column called 'prediction' overwritten by the model's", "workbench/predict.py",
  "        renamed = _out_of_the_way([str(c) for c in frame.columns], outputs)\n", "        renamed = {}\n",
  ["tests/test_predict.py::test_input_columns_named_as_the_models_outputs_are_kept_under_their_own_names"]),
 ("the ONNX bundle writes two columns called 'prediction'", "workbench/onnx_bundle/predict.py",
  "        if name in outputs:", "        if False:",
  ["tests/test_onnx_export.py::test_the_bundle_names_input_columns_apart_from_its_outputs_as_the_workbench_does"]),
 ("'12.345' in a file with decimal commas read as 12.345 unsaid", "workbench/ingest.py",
  "    if decimal_commas:\n        _note_dots_that_may_be_thousands(", "    if False:\n        _note_dots_that_may_be_thousands(",
  ["tests/test_ingest.py::test_dots_that_may_separate_thousands_in_a_file_with_decimal_commas_are_pointed_out"]),
 ("SAP's '1.234,56-' left as text", "workbench/ingest.py",
  '    return unsigned.str.replace(_TRAILING_MINUS, r"-\\1", regex=True)\n', "    return unsigned\n",
  ["tests/test_ingest.py::test_negatives_written_with_the_minus_after_or_as_a_true_minus_sign_read_as_negative"]),
 ("ZIP codes lose their leading zeros", "workbench/ingest.py",
  "    if _zero_padded_codes(present):\n", "    if False:\n",
  ["tests/test_ingest.py::test_codes_written_with_leading_zeros_keep_them",
   "tests/test_predict.py::test_a_model_trained_on_codes_reads_them_at_prediction_with_or_without_their_zeros"]),
 ("a date outside the range flagged as no date at prediction", "workbench/predict.py",
  "        if outside_range(pd.Series([value])).iloc[0]:", "        if False:",
  ["tests/test_predict.py::test_dates_pandas_cannot_hold_and_numbers_too_large_are_flagged_as_what_they_are"]),
 ("the input scaling layer learns at the base rate", "workbench/training.py",
  '    return groups + [{"params": [p], "lr": lr * factor} for p, factor in factors.items()]',
  '    return groups + [{"params": [p], "lr": lr} for p, factor in factors.items()]',
  ["tests/test_recipe.py::test_the_input_scaling_layer_learns_faster_trains_on_messy_data_and_reloads_the_same"]),
 ("a sweep finished while its last trial starts", "workbench/sweeps.py",
  " and not _slots_being_started(store, sweep, trials):", ":",
  ["tests/test_sweeps.py::test_a_sweep_is_not_finished_while_its_last_trial_is_being_started"]),
 ("SELU starts from He's init", "workbench/models/layers.py",
  '                relu_like = activation in ("relu", "gelu", "mish")',
  '                relu_like = activation in ("relu", "gelu", "mish", "selu")',
  ["tests/test_recipe.py::test_realmlp_activations_start_as_they_need_train_on_messy_data_and_reload_the_same"]),
 ("Mish's hand-written slope is off", "workbench/models/layers.py",
  "torch.rsub(bend.square(), 1).mul_(s).mul_(x)", "torch.rsub(bend.square(), 1).mul_(x)",
  ["tests/test_models.py::test_our_mish_is_torchs_mish_in_value_and_slope"]),
 ("the tutorial loop is timed with our OpenMP waiting policy", "benchmarks/time_to_quality.py",
  "        env = {k: v for k, v in os.environ.items() if k not in OURS_ONLY_ENV}\n", "        env = dict(os.environ)\n",
  ["tests/test_benchmarks.py::test_the_tutorial_loop_is_timed_as_a_users_own_script_runs"]),
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


def make_copy() -> Path:
    copy = Path(tempfile.mkdtemp(prefix="protections-")) / "repo"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "bench-results",
                                                             ".pytest_cache", ".ruff_cache", ".hypothesis",
                                                             "workbench-data"))
    (copy / ".venv").symlink_to(SRC / ".venv")
    return copy


def check(copy: Path, name: str, edits: list[tuple[str, str, str]], tests: list[str]) -> list[dict]:
    """Apply one mutation in `copy`, run its tests, restore the files; one result per test."""
    started = time.monotonic()
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
    seconds = round(time.monotonic() - started)
    return [{"mutation": name, "test": test, "failed": outcomes.get(test, "not run") in ("failed", "error"),
             "outcome": outcomes.get(test, "not run"), "seconds": seconds} for test in tests]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="indexes of the mutations to check (default: all)")
    parser.add_argument("--jobs", type=int, default=JOBS, help=f"mutations checked at once, each in its own copy "
                        f"(default {JOBS}: most tests wait on processes, not on a core)")
    args = parser.parse_args()
    chosen = [(i, m) for i, m in enumerate(MUTATIONS) if not args.only or str(i) in args.only]
    copies: queue.Queue[Path] = queue.Queue()
    for _ in range(max(1, args.jobs)):
        copies.put(make_copy())

    def run(item: tuple[int, tuple]) -> list[dict]:
        _, (name, path, old, new, tests) = item
        copy = copies.get()
        try:
            return check(copy, name, [(path, old, new)] if isinstance(path, str) else path, tests)
        finally:
            copies.put(copy)

    results, started = [], time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for checked in pool.map(run, chosen):
                for result in checked:
                    results.append(result)
                    print(json.dumps(result), flush=True)
    finally:
        while not copies.empty():
            shutil.rmtree(copies.get().parent, ignore_errors=True)
    missed = [r for r in results if not r["failed"]]
    print(f"{len(results) - len(missed)} of {len(results)} checks caught their missing protection "
          f"in {time.monotonic() - started:.0f} s", flush=True)
    for r in missed:
        print(f"NOT CAUGHT: {r['mutation']} -> {r['test']} ({r['outcome']})", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
