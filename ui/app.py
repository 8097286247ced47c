"""The Gradio app: create_app() builds the interface, launch() serves it.

    rag serve                  # or: python -m ui.app --port 7861

The chat endpoint is also an API: ``/ask`` takes question, history, model and k
and returns the answer text and the whole Answer as a dict (see docs/ui.md).
"""

# No `from __future__ import annotations` here: gr.api() reads the /ask
# function's annotations as real types to describe the endpoint.

import argparse
import ipaddress
import logging
import os
import sys
from typing import Any, Iterator

# Gradio reports usage by default; this product never phones home. It reads the
# variable when it is imported, so it is set first.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402

from rag.answering import Engine, get_engine  # noqa: E402
from rag.errors import ConfigError, RagError  # noqa: E402
from rag.settings import Settings, load_settings  # noqa: E402
from ui import handlers  # noqa: E402
from ui.render import (  # noqa: E402
    EMPTY_SOURCES,
    NOTE_CSS,
    PAPERS_CSS,
    SOURCES_CSS,
)

logger = logging.getLogger(__name__)

TITLE = "Abstracts QA"
EXAMPLES = [
    "What is SMiRL?",
    "What did Sergey Levine's papers propose?",
    "Which papers learn RL without task rewards?",
]
CHAT_PLACEHOLDER = (
    "**Ask a question about the papers.**\n\nEvery sentence of an answer cites "
    "its abstract as [1], [2], …; the abstracts appear beside the chat."
)
MAX_SLIDER_K = 20
_LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def create_app(
    engine: Engine | None = None, settings: Settings | None = None
) -> gr.Blocks:
    """Build the interface over ``engine`` (default: one for ``settings``)."""
    if engine is None:
        engine = get_engine(settings)
    settings = settings or engine.settings
    choices = handlers.list_models(settings)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        _header(engine)
        with gr.Tab("Ask"):
            _ask_tab(engine, settings, choices)
        with gr.Tab("Browse") as browse:
            _browse_tab(engine, browse)
        _ask_endpoint(engine, settings)

    app.queue(default_concurrency_limit=settings.ui.concurrency)
    return app


def launch(
    app: gr.Blocks | None = None,
    settings: Settings | None = None,
    host: str | None = None,
    port: int | None = None,
    share: bool | None = None,
    **options: Any,
) -> Any:
    """Serve ``app`` on [ui] host and port unless given; ``options`` go to
    Blocks.launch (e.g. prevent_thread_lock=True). Returns what it returns."""
    settings = settings or load_settings()
    app = app or create_app(settings=settings)
    host = host or settings.ui.host
    port = port or settings.ui.port
    share = settings.ui.share if share is None else share
    auth = login_from_environment(settings)
    for warning in exposure_warnings(host, share, auth is not None):
        logger.warning("%s", warning)

    return app.launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=auth,
        show_error=False,
        **options,
    )


def exposure_warnings(host: str, share: bool, has_login: bool) -> list[str]:
    """Why serving on ``host`` (and a share link) reaches beyond this machine."""
    login = "" if has_login else "; anyone who can reach it can use it without a login"
    warnings = []
    if share:
        warnings.append(f"a public Gradio share link was requested{login}")
    if not _is_loopback(host):
        warnings.append(
            f"the app listens on {host}, which other machines can reach{login}; "
            'set [ui] host = "127.0.0.1" to keep it local'
        )
    return warnings


def run_serve(args: argparse.Namespace) -> int:
    """`rag serve`: ingest the seeds if the store is empty, then serve until ^C."""
    ui: dict[str, Any] = {}
    if getattr(args, "host", None):
        ui["host"] = args.host
    if getattr(args, "port", None):
        ui["port"] = args.port
    if getattr(args, "share", False):
        ui["share"] = True
    settings = load_settings(getattr(args, "config", None), overrides={"ui": ui})

    engine = Engine(settings)
    ingest_if_empty(engine)
    launch(create_app(engine, settings), settings)
    return 0


def ingest_if_empty(engine: Engine) -> None:
    """Fill an empty store with the seed abstracts, so a first run can answer."""
    if engine.store.count() > 0:
        return
    from rag.ingest import ingest

    print("The store is empty: ingesting the seed abstracts first…", file=sys.stderr)
    report = ingest(
        settings=engine.settings, store=engine.store, embedder=engine.embedder
    )
    print(report.summary(), file=sys.stderr)


def login_from_environment(settings: Settings) -> tuple[str, str] | None:
    """(user, password) from the variables [ui] names, or None for no login."""
    user_env, password_env = settings.ui.auth_user_env, settings.ui.auth_password_env
    user, password = os.environ.get(user_env), os.environ.get(password_env)
    if not user and not password:
        return None
    if not user or not password:
        missing = password_env if user else user_env
        raise ConfigError(
            f"{missing} is not set but its partner is; set both {user_env} and "
            f"{password_env} to require a login, or neither to serve without one"
        )
    return user, password


def main(argv: list[str] | None = None) -> int:
    """`python -m ui.app`: the same as `rag serve`."""
    parser = argparse.ArgumentParser(prog="python -m ui.app", description=TITLE)
    parser.add_argument("--config", help="a TOML settings file (see config/)")
    parser.add_argument("--host", help="interface (default from [ui] host)")
    parser.add_argument("--port", type=int, help="port (default from [ui] port)")
    parser.add_argument("--share", action="store_true", help="public Gradio link")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)

    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_serve(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _header(engine: Engine) -> None:
    try:
        count = f"{engine.store.count()} research-paper abstracts"
    except RagError as exc:
        logger.warning("cannot count the papers: %s", exc)
        count = "research-paper abstracts"
    gr.Markdown(
        f"## {TITLE}\nAsk questions about {count}. Every sentence of an answer "
        "cites the abstract it comes from; open a source to see the passage."
    )


def _ask_tab(
    engine: Engine, settings: Settings, choices: list[handlers.ModelChoice]
) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            chat, box, send = _chat_column()
            examples = gr.Examples(
                EXAMPLES, inputs=[box], label="Examples", api_visibility="private"
            )
            model, k, note = _controls(engine, settings, choices)
        with gr.Column(scale=2, min_width=320):
            sources = gr.HTML(
                EMPTY_SOURCES,
                css_template=SOURCES_CSS,
                js_on_load=None,
                elem_id="qa-sources",
            )
            timings = gr.HTML(
                "", css_template=NOTE_CSS, js_on_load=None, elem_id="qa-timings"
            )

    question = gr.State("")

    def answer_in_chat(
        message: str, history: list, spec: str, count: float
    ) -> Iterator[handlers.ChatUpdate]:
        yield from handlers.respond(message, history, spec, count, engine)

    def describe(spec: str) -> str:
        return handlers.describe_model(spec, engine)

    # Clicking an example fills the box; from there it runs like a typed question.
    private = {"api_visibility": "private"}
    for trigger in (box.submit, send.click, examples.load_input_event.then):
        taken = trigger(
            handlers.take_question, box, [box, question], queue=False, **private
        )
        taken.then(
            answer_in_chat, [question, chat, model, k], [chat, sources, timings],
            **private,
        )

    # The chat's own bin button starts a new conversation; the panels follow it.
    chat.clear(
        lambda: (EMPTY_SOURCES, ""), None, [sources, timings], queue=False, **private
    )
    model.change(describe, model, note, queue=False, **private)


def _chat_column() -> tuple[gr.Chatbot, gr.Textbox, gr.Button]:
    chat = gr.Chatbot(
        show_label=False,
        height=500,
        elem_id="qa-chat",
        placeholder=CHAT_PLACEHOLDER,
        sanitize_html=True,
        allow_tags=False,
        feedback_options=None,
        buttons=["copy"],
    )
    with gr.Row(equal_height=True):
        box = gr.Textbox(
            placeholder="Ask about the papers, e.g. What is SMiRL?",
            show_label=False,
            container=False,
            scale=6,
            autofocus=True,
            elem_id="qa-question",
        )
        send = gr.Button(
            "Ask", variant="primary", scale=0, min_width=96, elem_id="qa-ask"
        )
    return chat, box, send


def _controls(
    engine: Engine, settings: Settings, choices: list[handlers.ModelChoice]
) -> tuple[gr.Dropdown, gr.Slider, gr.HTML]:
    default = settings.answer.model
    entries = handlers.model_choices(choices)
    if default not in [spec for _, spec in entries]:
        entries.insert(0, (default, default))

    with gr.Row():
        # A typed spec such as openai:NAME is allowed; its errors say what is wrong.
        model = gr.Dropdown(
            entries,
            value=default,
            label="Model",
            allow_custom_value=True,
            elem_id="qa-model",
        )
        k = gr.Slider(
            1,
            max(MAX_SLIDER_K, settings.retrieval.k),
            value=settings.retrieval.k,
            step=1,
            label="Abstracts to use",
            elem_id="qa-k",
        )
    note = gr.HTML(
        handlers.describe_model(default, engine),
        css_template=NOTE_CSS,
        js_on_load=None,
        elem_id="qa-model-note",
    )
    return model, k, note


def _browse_tab(engine: Engine, browse: gr.Tab) -> None:
    box = gr.Textbox(
        placeholder="Filter by title, author, venue or year",
        show_label=False,
        elem_id="qa-filter",
    )
    table = gr.HTML(
        handlers.filter_papers("", engine),
        css_template=PAPERS_CSS,
        js_on_load=None,
        elem_id="qa-papers",
    )

    def show(text: str) -> str:
        return handlers.filter_papers(text, engine)

    box.change(show, box, table, queue=False, api_visibility="private")
    # Papers ingested while the app runs appear when the tab is opened again.
    browse.select(show, box, table, queue=False, api_visibility="private")


def _ask_endpoint(engine: Engine, settings: Settings) -> None:
    default_model, default_k = settings.answer.model, settings.retrieval.k

    def ask(
        question: str,
        history: list | None = None,
        model: str = default_model,
        k: int = default_k,
    ) -> tuple[str, dict]:
        """Answer a question about the abstracts, citing them as [n].

        history: earlier turns as {"role", "content"} dicts (or [question, answer]
        pairs); model: a model spec such as "extractive"; k: abstracts to use.
        Returns the answer text and the Answer as a dict (sources, evidence,
        abstained, unsupported, timings, error).
        """
        return handlers.ask(question, history, model, k, engine)

    gr.api(ask, api_name="ask")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
