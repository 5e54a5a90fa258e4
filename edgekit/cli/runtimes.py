"""`edgekit runtimes`: list the runtime adapters and whether they work here."""

from __future__ import annotations

import click

from edgekit.cli.common import output_options


@click.command()
@output_options(
    json_help="Print one JSON document: every adapter's name, formats, whether it is available and what it lacks."
)
def runtimes(console):
    """List the runtime adapters and whether their library is importable here."""
    from edgekit.plugins import runtime_adapters

    adapters = runtime_adapters()
    rows = []
    for name, cls in sorted(adapters.items()):
        missing = cls.missing()
        rows.append(
            {
                "name": name,
                "formats": list(cls.formats),
                "available": not missing,
                "missing": missing,
                "explicit_only": bool(cls.explicit_only),
                "description": cls.description,
            }
        )
    if console.json:
        console.emit_json({"runtimes": rows})
        return
    width = max(len(n) for n in adapters)
    for r in rows:
        state = "available" if r["available"] else f"missing: {', '.join(r['missing'])}"
        console.result(f"{r['name'].ljust(width)}  {'/'.join(r['formats']):<14} {state:<22} {r['description']}")
