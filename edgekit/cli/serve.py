"""`edgekit serve`: serve a bundle over HTTP (no torch)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.common import QUIET, output_options, runtime_options


@click.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option(
    "--port",
    "-p",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0: any free port (the first line printed says which).",
)
@click.option(
    "--max-body-bytes",
    default=1 << 20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger request bodies get 413.",
)
@click.option(
    "--max-texts",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="More texts (or images) in one request get 413.",
)
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests worked on at once; more wait their turn (the model runs one batch at a time).",
)
@click.option(
    "--max-connections",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Open connections; more wait in the listen queue.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds from a request's first byte to the end of its headers; slower gets 408.",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds from the end of the headers to the end of the body; slower gets 408.",
)
@click.option(
    "--idle-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a keep-alive connection may wait for its next request before it is closed.",
)
@click.option("--log", is_flag=True, hidden=True, help="The default: one line per request (kept for old scripts).")
@runtime_options
@output_options()
def serve(
    bundle_path,
    host,
    port,
    max_body_bytes,
    max_texts,
    concurrency,
    max_connections,
    header_timeout,
    body_timeout,
    idle_timeout,
    log,
    runtime,
    variant,
    threads,
    console,
):
    """Serve a bundle over HTTP (JSON in, JSON out) for other processes on a device.

    \b
    GET  /health, /info
    POST /embed or /classify (or /predict)  {"texts": ["...", ...]}
    a decoder artifact (a compress output's onnx-* folder of a text-generation model):
    POST /generate {"prompt": "...", "max_new_tokens": N, ..., "stream": true|false}
         (stream: server-sent events); POST /v1/completions (OpenAI-compatible)
    image bundles: POST /classify  {"images": [base64 of a PNG/JPEG file, ...]}
                                   or {"arrays": [HxW or HxWxC pixel lists, ...]}
    Every response is JSON; bad requests get {"error": ...} with a 4xx status and the
    server keeps serving. SIGTERM or Ctrl-C: stop accepting, answer the requests in
    flight, exit 0. Numbers are rounded as `edgekit run` rounds them: embeddings
    to 7 decimals, probabilities and scores to 6.

    \b
    Logging on stderr: one line per request (METHOD PATH STATUS LATENCY) by
    default; --quiet/-q only warnings and errors.
    """
    import signal

    from edgekit.generation.serve import is_decoder

    if is_decoder(Path(bundle_path)):  # a decoder artifact or bundle: /generate (SSE) and /v1/completions
        from edgekit.generation.serve import load_generator, make_app

        gen, manifest = load_generator(Path(bundle_path), threads=threads or 2, variant=variant)
        import waitress

        app = make_app(gen, manifest)
        click.echo(f"serving {manifest['name']} (decoder, {manifest['precision']}) at http://{host}:{port}", err=True)
        waitress.serve(app, host=host, port=port, threads=concurrency, _quiet=True)
        return

    from edgekit.device.runtime_api import load
    from edgekit.device.serve import make_server

    model = load(bundle_path, runtime=runtime, threads=threads, variant=variant)
    server = make_server(
        model,
        host,
        port,
        quiet=console.level == QUIET,
        max_body_bytes=max_body_bytes,
        max_texts=max_texts,
        concurrency=concurrency,
        max_connections=max_connections,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        idle_timeout=idle_timeout,
    )
    addr, bound = server.server_address
    click.echo(
        f"serving {model.bundle.name} ({model.variant.name} on {model.runtime}) at "
        f"http://{f'[{addr}]' if ':' in addr else addr}:{bound}",
        err=True,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.stop())
    try:
        server.serve_forever()
    finally:
        server.server_close()
    click.echo("edgekit serve: stopped", err=True)
