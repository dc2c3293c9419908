"""Derived numbers (fixed/marginal split, ratio to the raw floor), the targets, and the markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXED_MAX_S = 10.0
REVALIDATION_MAX_RATIO = 1.5
COLD_MIN_THROUGHPUT_RATIO = 0.5
COLD_MIN_ONE_AT_A_TIME_RATIO = 10.0
RSS_MAX_MB = 300.0
MAPPED_MAX = 64
MB = 1024**2


def derive(rows: list[dict[str, Any]]) -> None:
    """Add fixed, marginal, ratios and checks to every row (in place)."""
    fixed = {row["size"]: row["dag"]["wall_s"] for row in rows if row["scenario"] == "a"}
    fixed_idle = {row["size"]: row["dag"].get("idle_sleep_s", 0.0) for row in rows if row["scenario"] == "a"}
    baseline = {row["size"]: row["dag"]["peak_rss_process_mb"] for row in rows if row["scenario"] == "a"}
    for row in rows:
        wall = row["dag"]["wall_s"]
        row["fixed_s"] = fixed.get(row["size"]) if row["scenario"] != "a" else wall
        # Both without `dags test`'s idle 1 s sleeps (see scenarios.py), which only empty runs have.
        idle = row["dag"].get("idle_sleep_s", 0.0)
        if row["fixed_s"] is not None:
            row["marginal_s"] = round((wall - idle) - (row["fixed_s"] - fixed_idle.get(row["size"], 0.0)), 3)
        else:
            row["marginal_s"] = None
        floor = row["floor"]["wall_s"] if row["floor"] else None
        marginal = row["marginal_s"]
        row["floor_s"] = floor
        row["ratio"] = round(marginal / floor, 2) if floor and marginal is not None else None
        row["packages_per_s"] = round(row["packages"] / wall, 1) if row["packages"] else None
        row["packages_per_s_marginal"] = (
            round(row["packages"] / marginal, 1) if row["packages"] and marginal and marginal > 0 else None
        )
        row["packages_per_s_floor"] = round(row["packages"] / floor, 1) if row["packages"] and floor else None
        base = baseline.get(row["size"])
        row["rss_over_empty_run_mb"] = round(row["dag"]["peak_rss_process_mb"] - base, 1) if base else None
        walls = [r["dag"].get("walls_s", []) for r in rows if r["scenario"] == "a" and r["size"] == row["size"]]
        row["fixed_spread_s"] = round(max(walls[0]) - min(walls[0]), 2) if walls and walls[0] else None
        row["checks"] = checks(row)
        verdicts = [ok for _name, ok, _detail in row["checks"]]
        row["result"] = "FAIL" if False in verdicts else "PASS"


def checks(row: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, passed, detail) for the row; every row gets the run, RSS and mapped-instance checks."""
    dag, scenario = row["dag"], row["scenario"]
    up, s3 = dag["upstream"], dag["s3"]
    tasks = dag.get("tasks") or {}
    result = [
        ("dag run succeeded", dag["returncode"] == 0 and tasks.get("state") == "success", f"rc {dag['returncode']}"),
        (
            f"peak RSS < {RSS_MAX_MB:.0f} MB",
            dag["peak_rss_process_mb"] < RSS_MAX_MB,
            f"{dag['peak_rss_process_mb']} MB (largest process; tree {dag['peak_rss_tree_mb']} MB; "
            f"{fmt(row.get('rss_over_empty_run_mb'))} MB over the empty run)",
        ),
        (
            f"mapped task instances <= {MAPPED_MAX} per mapped task",
            tasks.get("max_mapped", 0) <= MAPPED_MAX,
            json.dumps(tasks.get("mapped", {})),
        ),
    ]
    if scenario in ("b", "c", "d", "e"):
        available = (dag.get("report") or {}).get("packages_available")
        result.append(("index lists every package", available == row["packages"], f"{available} in packages.json"))
    if row["setup"]:
        return result
    marginal, floor = row["marginal_s"], row["floor_s"]
    if scenario == "a":
        idle = dag.get("idle_sleep_s", 0.0)
        detail = f"{dag['wall_s']} s, of which {idle:.0f} s `dags test` idle sleeps"
        own = row.get("airflow_floor")
        if own and own["returncode"] == 0:
            detail += (
                f"; Airflow alone (bench/airflow_floor: the same seven tasks doing nothing) {own['wall_s']} s "
                f"and {own['peak_rss_process_mb']} MB, so the mirror adds {dag['wall_s'] - own['wall_s']:.1f} s "
                f"and {dag['peak_rss_process_mb'] - own['peak_rss_process_mb']:.1f} MB"
            )
        result.append((f"fixed cost <= {FIXED_MAX_S:.0f} s", dag["wall_s"] <= FIXED_MAX_S, detail))
    if scenario == "b" and marginal is not None and floor:
        ratio = floor / marginal if marginal > 0 else float("inf")
        result.append(
            (
                f"cold throughput >= {COLD_MIN_THROUGHPUT_RATIO}x raw floor",
                ratio >= COLD_MIN_THROUGHPUT_RATIO,
                f"{row['packages_per_s_marginal']} pkg/s (marginal) vs floor {row['packages_per_s_floor']} pkg/s "
                f"= {ratio:.2f}x",
            )
        )
    baseline = row.get("one_at_a_time")
    # Without an empty run at this size there is no marginal cost: the whole wall time is a lower bound.
    rate, basis = (
        (row["packages_per_s_marginal"], "marginal")
        if row["packages_per_s_marginal"]
        else (row["packages_per_s"], "wall")
    )
    if scenario == "b" and baseline and rate:
        per_package = dag["upstream"].get("archive_downloads", 0) / row["packages"]
        one_rate = baseline["versions_per_s"] / per_package if per_package else None
        ratio = rate / one_rate if one_rate else float("inf")
        result.append(
            (
                f"cold throughput >= {COLD_MIN_ONE_AT_A_TIME_RATIO:.0f}x re-archiving one version at a time",
                ratio >= COLD_MIN_ONE_AT_A_TIME_RATIO,
                f"{rate} pkg/s ({basis}) vs {baseline['versions_per_s']} versions/s one at a time "
                f"({baseline['versions']} sampled, `composer archive` + one PUT each) = {one_rate or 0:.2f} pkg/s "
                f"at {per_package:.1f} archives per package: {ratio:.1f}x",
            )
        )
    if scenario in ("c", "e"):
        result += unchanged_checks(dag, up, s3, allow_catalog=scenario == "e")
    if scenario == "c" and marginal is not None and floor:
        result.append(
            (
                f"revalidation marginal <= {REVALIDATION_MAX_RATIO}x raw floor",
                marginal <= REVALIDATION_MAX_RATIO * floor,
                f"{marginal} s vs floor {floor} s = {marginal / floor:.2f}x"
                + (f" (fixed-cost runs spread {row['fixed_spread_s']} s)" if row.get("fixed_spread_s") else ""),
            )
        )
    if scenario == "c":
        p2 = sum(v for k, v in up.items() if k.startswith("p2_") and k[3:].isdigit())
        result.append(
            (
                "only conditional p2 requests, at most one per file",
                dag["p2_max_requests_per_file"] <= 1 and up.get("p2_200", 0) == 0,
                f"{p2} p2 requests for {dag['p2_files']} files, {up.get('p2_conditional', 0)} conditional, "
                f"{up.get('p2_200', 0)} answered 200",
            )
        )
    if scenario == "d":
        result.append(
            (
                "at most one request per p2 file",
                dag["p2_max_requests_per_file"] <= 1,
                f"max {dag['p2_max_requests_per_file']} per file",
            )
        )
    if scenario == "e":
        p2 = sum(v for k, v in up.items() if k.startswith("p2_") and k[3:].isdigit())
        result.append(
            (
                "changes feed used: no p2 requests when the feed lists no change",
                p2 == 0 and up.get("changes_feed", 0) >= 1,
                f"{up.get('changes_feed', 0)} feed requests, {p2} p2 requests",
            )
        )
    return result


def unchanged_checks(dag: dict[str, Any], up: dict[str, int], s3: dict[str, int], allow_catalog: bool):
    other_writes = [
        key
        for key in dag["s3_writes_other_than_report"]
        if not (allow_catalog and key.endswith("/mirror-state/catalog.json"))
    ]
    return [
        ("zero archive downloads", up.get("archive_downloads", 0) == 0, f"{up.get('archive_downloads', 0)}"),
        (
            "no S3 writes but the run report" + (" and the catalog cursor" if allow_catalog else ""),
            not other_writes and s3.get("DELETE", 0) == 0 and s3.get("POST", 0) == 0,
            f"{dag['s3_writes']} writes, of them {dag.get('s3_handoff_puts', 0)} hand-offs between tasks"
            + (f", e.g. {other_writes[:3]}" if other_writes else ""),
        ),
    ]


def one_line(row: dict[str, Any]) -> str:
    dag, floor = row["dag"], row["floor"]
    return (
        f"    wall {dag['wall_s']} s, floor {floor['wall_s'] if floor else '-'} s, rc {dag['returncode']}, "
        f"upstream {compact(dag['upstream'])}, s3 {compact(dag['s3'])}, peak RSS {dag['peak_rss_process_mb']} MB, "
        f"mapped {dag['tasks'].get('mapped') if dag.get('tasks') else '-'}"
    )


def compact(counts: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(counts.items()) if not k.startswith("bytes"))


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| size | scenario | wall s | fixed s | marginal s | floor s | marginal/floor | pkg/s | "
        "upstream 200/304/404/archives | S3 PUT/GET/HEAD/LIST/DEL (moto) | S3 (run report) | "
        "MB up / S3 in / S3 out | peak RSS MB | mapped TIs | other load (cores) | result |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        dag = row["dag"]
        up, s3 = dag["upstream"], dag["s3"]
        rep = (dag.get("report") or {}).get("s3_requests") or {}
        tasks = dag.get("tasks") or {}
        name = f"{row['scenario']} {'(setup) ' if row['setup'] else ''}{row['title']}"
        if dag.get("profile"):
            name += " (py-spy attached)"
        lines.append(
            "| "
            + " | ".join(
                [
                    str(row["size"]),
                    name,
                    fmt(dag["wall_s"]),
                    fmt(row["fixed_s"]),
                    fmt(row["marginal_s"]),
                    fmt(row["floor_s"], 2),
                    fmt(row["ratio"], 2),
                    fmt(row["packages_per_s"]),
                    "/".join(str(up.get(k, 0)) for k in ("p2_200", "p2_304", "p2_404", "archive_downloads")),
                    "/".join(str(s3.get(k, 0)) for k in ("PUT", "GET", "HEAD", "LIST", "DELETE")),
                    " ".join(f"{k} {v}" for k, v in sorted(rep.items())) or "-",
                    f"{up.get('bytes', 0) / MB:.1f} / {s3.get('bytes_in', 0) / MB:.1f} / "
                    f"{s3.get('bytes_out', 0) / MB:.1f}",
                    f"{dag['peak_rss_process_mb']:.0f}",
                    ", ".join(f"{k} {v}" for k, v in sorted(tasks.get("mapped", {}).items())) or "0",
                    f"{dag['cpu']['other_cores']:.2f}"
                    + (f" / {row['floor']['cpu']['other_cores']:.2f}" if row["floor"] else ""),
                    "setup" if row["setup"] and row["result"] == "PASS" else row["result"],
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def details(rows: list[dict[str, Any]]) -> str:
    lines = ["Checks (PASS/FAIL per target):", ""]
    for row in rows:
        lines.append(f"- {row['size']} {row['scenario']}{' (setup)' if row['setup'] else ''}: {row['result']}")
        for name, ok, detail in row["checks"]:
            lines.append(f"  - {'PASS' if ok else 'FAIL'} {name}: {detail}")
        if row["note"]:
            lines.append(f"  - note: {row['note']}")
        tasks = row["dag"].get("tasks") or {}
        if tasks.get("task_seconds"):
            spent = ", ".join(f"{k} {v}" for k, v in tasks["task_seconds"].items())
            lines.append(f"  - task seconds (sum over instances): {spent}")
        if len(row["dag"].get("walls_s", [])) > 1:
            floors = row["floor"]["walls_s"] if row["floor"] else "-"
            lines.append(
                f"  - repeated runs, fastest kept: DAG walls {row['dag']['walls_s']} s, floor walls {floors} s"
            )
        lines.append(f"  - CPU during the DAG run: {json.dumps(row['dag']['cpu'])}")
        if row["floor"]:
            lines.append(f"  - CPU during the raw floor: {json.dumps(row['floor']['cpu'])}")
        if row["dag"].get("phases_s"):
            lines.append(f"  - wall time phases (s): {json.dumps(row['dag']['phases_s'])}")
        if row.get("airflow_floor"):
            own = row["airflow_floor"]
            lines.append(
                f"  - Airflow alone (no-op DAG of the same shape): walls {own['walls_s']} s, rc {own['returncode']}, "
                f"phases (s) {json.dumps(own['phases_s'])}"
            )
        if row["floor"]:
            lines.append(
                f"  - raw floor: {json.dumps(row['floor']['workload'])} -> {json.dumps(row['floor']['statuses'])}"
            )
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]], machine: dict[str, Any], args: dict[str, Any], elapsed: float) -> str:
    info = (
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['ram_gb']} GB RAM, Python {machine['python']}, "
        f"Airflow {machine['airflow']}, moto {machine['moto']}; "
        f"{'LocalExecutor' if args.get('use_executor') else 'airflow dags test (tasks in-process)'}; "
        f"concurrency {args['concurrency']}; {args['versions']} versions per package; "
        f"bench took {elapsed / 60:.1f} min."
    )
    code = machine.get("code", {})
    if code:
        dirty = ", ".join(code["dirty"]) or "none"
        info += f"\n\nCode measured: HEAD {code['head']}, uncommitted changes: {dirty} (digest {code['code_sha1']})."
    legend = (
        "marginal = wall - fixed (scenario a of the same size), both without the 1 s sleeps `dags test` makes "
        "when it finds no task to run (2 s in an empty run, none in a run with work); "
        "floor = the same upstream requests and S3 PUTs by a plain threaded client (bench/raw_floor.py); "
        "peak RSS = the largest process of the airflow tree; "
        "other load = CPU cores busy with processes that are not part of the bench, during the DAG run / the floor."
    )
    if len({row.get("code_sha1") for row in rows}) > 1:
        legend += " WARNING: include/ or dags/ changed while the bench ran (code_sha1 differs between rows)."
    return "\n\n".join(["# composer-s3-mirror benchmark", info, legend, table(rows), details(rows)]) + "\n"


def write(path: Path, rows: list[dict[str, Any]], machine: dict[str, Any], args: dict[str, Any], elapsed: float) -> str:
    derive(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine, "args": args, "elapsed_s": round(elapsed, 1), "rows": rows}
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    text = markdown(rows, machine, args, elapsed)
    path.with_suffix(".md").write_text(text)
    return text
