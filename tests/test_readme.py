"""The README names only files that are in the repository, and every example."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
#: files the README names that the demo writes, not files of the repository
OUTPUTS = {"ranvier_demo.png", "ranvier_demo_hardware.png", "run.h5"}


def test_every_path_and_link_in_the_readme_exists():
    links = re.findall(r"\]\(([^)#]+)\)", README)
    paths = re.findall(r"`([\w./-]+/[\w.-]+\.(?:md|py|toml|txt|json))`", README)
    named = [p for p in links + paths if "://" not in p and p not in OUTPUTS]
    assert named, "no paths found"
    missing = [p for p in named if not (ROOT / p).exists()]
    assert not missing, missing


def test_every_example_is_in_the_readme():
    missing = [p.name for p in (ROOT / "examples").glob("*.py") if f"examples/{p.name}" not in README]
    assert not missing, missing


def test_the_readme_commands_install_the_extras_and_ci_runs_the_test_command():
    commands = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(commands) == 2
    demo, tests = commands
    assert 'pip install -e ".[all]"' in demo and demo.endswith("ranvier demo")
    assert 'pip install -e ".[all,test]"' in tests and tests.endswith("python -m pytest")
    assert tests in (ROOT / ".ci" / "run").read_text()
