"""``webhook-dev recordings``: the recordings in the state directory (and any given), with
counts and sizes from their indexes (built or brought up to date on the way)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from webhook_dev.paths import state_dir
from webhook_dev.recording.index import INDEX_SUFFIX, RecordingIndex


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def recordings(paths: tuple[Path, ...], as_json: bool) -> None:
    """List recordings: those in the state directory's recordings/, or PATHS (files, or
    directories searched for *.jsonl), with exchanges, denied, flagged, span and size.

    Parts of a rotated recording (NAME.1.jsonl, NAME.2.jsonl...) are listed each.
    """
    files = _recording_files(paths or (state_dir() / "recordings",))
    listed = []
    for path in files:
        index, report = RecordingIndex.open(path)
        try:
            stats = index.stats()
        finally:
            index.close()
        listed.append({"path": str(path), "bytes": path.stat().st_size, **stats})
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps({"recordings": listed}, indent=2))
        return
    if not listed:
        click.echo("no recordings")
        return
    table = Table(box=None, pad_edge=False)
    for column, justify in [
        ("recording", "left"),
        ("exchanges", "right"),
        ("denied", "right"),
        ("flagged", "right"),
        ("first", "left"),
        ("last", "left"),
        ("size", "right"),
    ]:
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for entry in listed:
        table.add_row(
            entry["path"],
            str(entry["exchanges"]),
            str(entry["denied"]),
            str(entry["flagged"]),
            _short_time(entry["first"]),
            _short_time(entry["last"]),
            _size(entry["bytes"]),
        )
    Console(soft_wrap=True, highlight=False).print(table)


def _recording_files(paths: tuple[Path, ...]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.jsonl") if p.is_file()))
        elif path.is_file() and not path.name.endswith(INDEX_SUFFIX):
            files.append(path)
    return files


def _short_time(value: str | None) -> str:
    return "-" if not value else value[:19].replace("T", " ")


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
