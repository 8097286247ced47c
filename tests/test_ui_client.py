"""The app's API through gradio_client, against the app served in-process."""

from __future__ import annotations

import pytest
from gradio_client import Client


@pytest.fixture(scope="module")
def client(ui_server: str) -> Client:
    return Client(ui_server, verbose=False)


def test_question_gets_a_cited_answer(client):
    text, answer = client.predict(
        "What is SMiRL?", [], "extractive", 5, api_name="/ask"
    )

    assert "[1]" in text
    assert "SMiRL" in answer["sources"][0]["title"]
    assert answer["sources"][0]["evidence"]
    assert not answer["abstained"] and answer["error"] is None
    assert answer["model"] == "extractive" and answer["timings"]["total"] > 0


def test_follow_up_uses_the_history(client):
    first, _ = client.predict("What is SMiRL?", [], "extractive", 5, api_name="/ask")
    history = [
        {"role": "user", "content": "What is SMiRL?"},
        {"role": "assistant", "content": first},
    ]
    _, alone = client.predict("How does it work?", [], "extractive", 5, api_name="/ask")
    _, follow_up = client.predict(
        "How does it work?", history, "extractive", 5, api_name="/ask"
    )

    assert not any("SMiRL" in source["title"] for source in alone["sources"])
    assert any("SMiRL" in source["title"] for source in follow_up["sources"])


def test_defaults_come_from_the_settings(client):
    text, answer = client.predict(question="What is SMiRL?", api_name="/ask")

    assert answer["model"] == "extractive" and "[1]" in text


def test_errors_come_back_as_readable_answers(client):
    text, answer = client.predict("  ", [], "extractive", 5, api_name="/ask")

    assert "question is empty" in text and answer["error"] == text
    assert "Traceback" not in text


def test_only_the_ask_endpoint_is_public(client):
    endpoints = client.view_api(print_info=False, return_format="dict")

    assert list(endpoints["named_endpoints"]) == ["/ask"]
    assert not endpoints["unnamed_endpoints"]
    parameters = endpoints["named_endpoints"]["/ask"]["parameters"]
    names = [parameter["parameter_name"] for parameter in parameters]
    assert names == ["question", "history", "model", "k"]
