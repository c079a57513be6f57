"""The call stack in the open: strings stay strings, failures travel as exceptions, no module state."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from servers.profiles.tools import app as profiles
from shared.errors import NotFound
from shared.identity import Principal
from shared.pipeline import ToolCallPipeline
from shared.policy import RETRY, Policy
from shared.server import SuiteServer
from shared.tool import ToolFailed, client_message

ROOT = Path(__file__).resolve().parent.parent


def who(name: str, *scopes: str) -> Principal:
    return Principal(f"{name}-{uuid.uuid4().hex[:8]}", frozenset(scopes or ("profiles:read", "profiles:write")),
                     "test")


@pytest.mark.parametrize("text", ['{"a":1}', "null", "[1, 2]", "true", '"quoted"'])
async def test_a_json_looking_string_reaches_the_tool_as_the_string_sent(connect, text):
    """The SDK used to `json.loads` a string for a `str | None` parameter: `null` became None (the bio
    silently left unchanged) and `{"a":1}` an object (refused). The caller's text must be stored as sent."""
    async with connect(profiles, principal=who("json")) as client:
        created = (await client.call_tool("create_profile", {"display_name": "J", "email": f"{uuid.uuid4().hex}@x.io",
                                                             "bio": text})).structured_content
        assert created["bio"] == text  # (`bio: Bio`, plain str: never pre-parsed)
        updated = await client.call_tool("update_profile", {"profile_id": created["id"], "bio": text + " ",
                                                            "expected_version": created["version"]})
        assert not updated.is_error, updated.content[0].text
        assert updated.structured_content["bio"] == text + " "
        again = await client.call_tool("update_profile", {"profile_id": created["id"], "bio": text,
                                                          "expected_version": updated.structured_content["version"]})
        assert again.structured_content["bio"] == text


async def test_declared_checks_still_apply_to_kept_strings(connect):
    async with connect(profiles, principal=who("json")) as client:
        created = (await client.call_tool("create_profile", {"display_name": "K", "email": f"{uuid.uuid4().hex}@x.io"})
                   ).structured_content
        too_long = await client.call_tool("update_profile", {"profile_id": created["id"], "bio": "x" * 2001,
                                                             "expected_version": created["version"]})
        assert too_long.is_error and too_long.content[0].text.startswith("invalid_input: invalid arguments: bio")
        not_text = await client.call_tool("update_profile", {"profile_id": created["id"], "bio": {"a": 1},
                                                             "expected_version": created["version"]})
        assert not_text.is_error and "bio" in not_text.content[0].text


def test_kept_strings_keep_the_declared_schema():
    from mcp.server.mcpserver.utilities.func_metadata import func_metadata

    from servers.profiles.tools import update_profile

    declared = func_metadata(update_profile).arg_model.model_json_schema(by_alias=True)
    import asyncio

    served = {t.name: t.input_schema for t in asyncio.run(profiles.mcp.list_tools())}["update_profile"]
    assert served["properties"] == declared["properties"]


async def test_a_failure_travels_back_as_an_exception_not_a_side_channel():
    app = SuiteServer("open-failure")

    @app.tool(Policy(scopes={"o:read"}, read_only=True, retry=RETRY))
    async def missing() -> str:
        raise NotFound("no such thing")

    from shared.tool import guard_tool

    with pytest.raises(ToolFailed) as raised:
        await guard_tool(missing, app.policies["missing"])()
    assert raised.value.failure.error_class == "not_found"
    assert str(raised.value) == client_message(raised.value.failure) == "not_found: no such thing"
    from shared.identity import Call

    assert "failure" not in Call.__dataclass_fields__  # nothing to smuggle a failure back through


def test_the_layers_are_one_visible_list_in_order():
    pipeline = ToolCallPipeline(SuiteServer("order"))
    assert [layer.__name__ for layer in pipeline.layers] == [
        "audit_outcome", "check_scopes", "limit_rate", "audit_intent"]


async def test_observers_and_the_session_principal_belong_to_one_server(connect):
    """Instance state: an observer of one server never sees another's calls, and `acting_as` on one
    server does not change who calls another."""
    seen_here: list[str] = []
    seen_there: list[str] = []
    here, there = SuiteServer("here"), SuiteServer("there")

    @here.tool(Policy(scopes={"here:read"}, read_only=True))
    async def whoami() -> str:
        from shared.identity import current_principal

        return current_principal().id

    here.call_observers.append(lambda record, _s: seen_here.append(record["principal"]))
    there.call_observers.append(lambda record, _s: seen_there.append(record["principal"]))
    me = Principal("acting-" + uuid.uuid4().hex[:8], frozenset({"here:read"}), "test")
    other = Principal("other", frozenset(), "test")
    with there.acting_as(other):
        assert there.pipeline.principal() == other
        assert here.pipeline.principal() == here.default_principal
        async with connect(here, principal=me) as client:
            result = await client.call_tool("whoami", {})
    assert there.pipeline.principal() == there.default_principal
    assert result.structured_content == {"result": me.id}
    assert seen_here == [me.id] and seen_there == []


def test_the_core_uses_no_private_sdk_attributes():
    found = subprocess.run(["grep", "-rn", "_tool_manager", "shared/", "--include=*.py"], cwd=ROOT,
                           capture_output=True, text=True).stdout
    assert found == ""
