"""The README's Python example runs as written and shows what it says."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_shows_emergent_invariance():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    out = subprocess.run([sys.executable, "-c", blocks[0]], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(None, 1) for line in out.stdout.strip().splitlines())
    plain = [float(v) for v in re.findall(r"'([^']+)'", lines["plain"])]
    aug = [float(v) for v in re.findall(r"'([^']+)'", lines["augmented"])]
    assert min(plain) > 0.05 and max(aug) < 1e-10, out.stdout


def test_readme_commands_match_ci():
    text = README.read_text()
    first = re.search(r"```bash\n(.*?)\n(.*?)\n```", text, re.S)
    install_cmd, test_cmd = first.group(1), first.group(2)
    assert install_cmd.endswith("ntkequi demo")
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_cmd in ci
