"""Every registered domain toolbox implements exactly its vocabulary; Toolbox.execute's rules."""

import pytest

from lumos.domains import DOMAINS
from lumos.format import Action, parse_action
from lumos.tools import Tool, ToolError, Toolbox, toolbox
from lumos.vocabulary import MATHS, vocabulary


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_toolbox_implements_exactly_its_vocabulary(domain):
    with toolbox(domain) as box:
        vocab = vocabulary(domain)
        assert box.domain == domain
        assert box.tool_names == vocab.tool_names
        for name, tool in box.tools.items():
            assert tool.name == name
            assert tool.description == vocab.spec(name).description
            assert callable(tool.run)


def test_unknown_domain_is_refused():
    with pytest.raises(ValueError, match="unknown domain 'chess'"):
        toolbox("chess")


def test_toolbox_refuses_tools_outside_the_vocabulary():
    functions = {name: (lambda args, variables: [args]) for name in MATHS.tool_names}
    with pytest.raises(ValueError, match="not in the vocabulary"):
        Toolbox.from_vocabulary(MATHS, {**functions, "Plot": lambda args, variables: []})
    del functions["Count"]
    with pytest.raises(ValueError, match="missing"):
        Toolbox.from_vocabulary(MATHS, functions)


def _echo_box() -> Toolbox:
    return Toolbox("test", [Tool("Echo", "Repeat the input", lambda args, variables: [args]),
                            Tool("Split", "Split on commas", lambda args, variables: args.split(","))])


def test_execute_stores_values_under_the_outputs_and_returns_the_text():
    variables = {"R1": "7"}
    assert _echo_box().execute(parse_action("R2, R3 = Split(a,b)"), variables) == "a, b"
    assert variables == {"R1": "7", "R2": "a", "R3": "b"}


def test_execute_checks_the_number_of_values():
    with pytest.raises(ToolError, match=r"gave 2 value\(s\) \(a, b\) for 1 output"):
        _echo_box().execute(parse_action("R1 = Split(a,b)"), {})
    with pytest.raises(ToolError, match=r"gave 1 value\(s\)"):
        _echo_box().execute(parse_action("R1, R2 = Echo(a)"), {})


def test_execute_refuses_undefined_variables_and_unknown_tools():
    with pytest.raises(ToolError, match="undefined variable.*R4.*defined: R1"):
        _echo_box().execute(parse_action("R5 = Echo(R1 + R4)"), {"R1": "1"})
    with pytest.raises(ToolError, match="unknown tool 'Shout'.*available: Echo, Split"):
        _echo_box().execute(Action("Shout", "hi", ("R1",)), {})


def test_tool_errors_name_the_action():
    def fail(args, variables):
        raise ToolError("it broke")
    box = Toolbox("test", [Tool("Fail", "Always fails", fail)])
    with pytest.raises(ToolError, match=r"^Fail\(x\): it broke$"):
        box.execute(parse_action("R1 = Fail(x)"), {})


def test_importing_the_tools_stays_cheap():
    import subprocess
    import sys

    code = "import sys, lumos.tools, lumos.tools.maths; print(sorted({'sympy', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
