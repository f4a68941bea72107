"""`durable ui`: the web dashboard."""

from __future__ import annotations

import click

from durable.cli._common import db_option, fail, handle_errors, open_client, run_async
from durable.ui.security import TOKEN_ENV, bind_refusal


@click.command()
@db_option
@click.option(
    "--host", default="127.0.0.1", show_default=True, metavar="HOST",
    help="The address to listen on. Any but a loopback one needs a token.",
)  # fmt: skip
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8400, show_default=True, metavar="PORT",
    help="The port to listen on (0: any free one, printed at start).",
)  # fmt: skip
@click.option(
    "--token", default=None, envvar=TOKEN_ENV, show_envvar=True, metavar="TOKEN",
    help="A secret every request must carry (open the dashboard once with ?token=TOKEN).",
)  # fmt: skip
@handle_errors
def ui(db: str | None, host: str, port: int, token: str | None) -> None:
    """Serve the web dashboard: tasks, their histories and logs, workers, and metrics.

    It can cancel and notify any task of the database: it listens on 127.0.0.1 by
    default, and refuses any other address unless a token is set.
    """
    refusal = bind_refusal(host, token)
    if refusal is not None:
        fail(refusal)

    async def main() -> None:
        from durable.metrics_http import listen, serve_app
        from durable.ui.app import Dashboard, create_app
        from durable.ui.reader import open_reader
        from durable.ui.security import Guard

        sock = listen(host, port)
        try:
            async with await open_client(db) as client:
                reader = await open_reader(db)
                dash = Dashboard(client=client, reader=reader, guard=Guard(token))
                try:
                    bound = sock.getsockname()[1]
                    shown = f"[{host}]" if ":" in host else host
                    click.echo(f"durable dashboard on http://{shown}:{bound}/", err=True)
                    await serve_app(create_app(dash), sock, until_signal=True)
                finally:
                    dash.close()
                    await reader.close()
        finally:
            sock.close()

    run_async(main)
