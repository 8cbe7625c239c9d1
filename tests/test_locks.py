"""The lock-file allowlist (offpkg.trust.locks) line by line: what pip would read as more than a pin is refused."""

from __future__ import annotations

import pytest

from offpkg.manifest import Package
from offpkg.trust.locks import check_pip_conf, check_requirements, parse_requirements

H1, H2 = "1" * 64, "2" * 64
WHEEL = Package(name="alpha", version="1.0", filename="alpha-1.0-py3-none-any.whl",
                path="wheels/alpha-1.0-py3-none-any.whl", sha256=H1, size=10)


@pytest.mark.parametrize("text", [
    f"alpha==1.0 \\\n    --hash=sha256:{H1}\n",
    f"# header\n\nAlpha==1.0 --hash=sha256:{H1}\n",
    f"alpha==1.0 \\\n\t--hash=sha256:{H1}\n# trailing comment \\\n",
])
def test_accepted(text: str) -> None:
    assert check_requirements(text, "requirements.txt", [WHEEL]) == []


@pytest.mark.parametrize("text,needle", [
    (f"alpha==1.0 --hash=sha256:{H1} --hash=sha256:{H2}\n", "not the hash of its bundled wheel"),
    (f"alpha==1.0 --hash=sha256:{H1}\n--find-links extra\n", "'--find-links extra' is not allowed"),
    (f"alpha==1.0 --hash=sha256:{H1} --no-binary alpha\n", "'--no-binary' after alpha==1.0"),
    (f"alpha==1.0 --hash=sha256:{H1}\n-c /etc/x\n", "'-c /etc/x' is not allowed"),
    (f"alpha===1.0 --hash=sha256:{H1}\n", "is not allowed"),
    (f"alpha[x]==1.0 --hash=sha256:{H1}\n", "is not allowed"),
    (f"alpha==1.0 ; python_version>'3' --hash=sha256:{H1}\n", "';' after alpha==1.0"),
    (f"alpha==1.0 --hash=sha256:{H1} # inline\n", "'#' after"),
    (f"alpha==1.0 \\\n# comment\n    --hash=sha256:{H1}\n", "continuation not followed by a --hash line"),
    (f"alpha==1.0 --hash=sha256:{H1}\nalpha==1.0 --hash=sha256:{H1}\n", "pins alpha a second time"),
    (f"alpha==1.0 --hash=sha256:{H1}\r\n", "'\\r'"),
    (f"alpha==1.0 --hash=sha256:{H1}\n\u202e\n", "'\\u202e'"),
    ("alpha==1.0\n", "without a --hash"),
    (f"alpha==1.1 --hash=sha256:{H1}\n", "pins alpha==1.1, the bundle holds 1.0"),
    (f"alpha==1.0 --hash=sha256:{H1}\nbeta==1 --hash=sha256:{H2}\n", "pins beta, which has no wheel"),
    (f"alpha==1.0 --hash=sha256:{H1}\nhttp://127.0.0.1:9/x.whl\n", "is not allowed"),
    (f"alpha==1.0 --hash=sha256:{H1}\n--find-links=${{HOME}}\n", "is not allowed"),
])
def test_refused(text: str, needle: str) -> None:
    problems = check_requirements(text, "requirements.txt", [WHEEL])
    assert any(needle in p for p in problems), problems


def test_parse_keeps_line_numbers() -> None:
    pins, problems = parse_requirements(f"# x\nalpha==1.0 \\\n  --hash=sha256:{H1}\n", "r.txt")
    assert problems == [] and pins["alpha"].line == 2 and pins["alpha"].hashes == (H1,)


def test_pip_conf_allowlist() -> None:
    offpkg_own = ("# comment\n[global]\nno-index = true\nfind-links = wheels\nonly-binary = :all:\n"
                  "disable-pip-version-check = true\n")
    assert check_pip_conf(offpkg_own) == []
    for line in ("index-url = http://x/simple", "find_links = /", "trusted-host = x", "find-links = /tmp",
                 "[install]", "no-index = false"):
        assert check_pip_conf(offpkg_own + line + "\n"), line
