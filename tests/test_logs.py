"""Progress bars in log files: one line per redraw, a redraw every few seconds, each message once."""

import io
import subprocess
import sys

from brainphase.logs import LineProgressStream

PROGRAM = """
import logging, sys, time
from brainphase.cli import main
from brainphase.logs import log_friendly_stderr
log_friendly_stderr()
logging.basicConfig(level="INFO", format="%(levelname)s %(message)s", stream=sys.stderr)
from tqdm import tqdm
logging.getLogger("demo").info("before the bar")
for _ in tqdm(range(50), desc="work", mininterval=0.05):
    time.sleep(0.01)
logging.getLogger("demo").info("after the bar")
"""


def test_carriage_returns_become_lines_and_erased_bars_vanish():
    out = io.StringIO()
    stream = LineProgressStream(out)
    stream.write("\rbar  10%")
    stream.write("\rbar  50%")
    stream.write("\r" + " " * 9 + "\r")  # tqdm erasing a finished bar (leave=False)
    stream.write("INFO a message\n")
    stream.write("\n\rinner  20%\x1b[A")  # a nested bar: one line down, then the cursor back up
    stream.write("\rbar 100%")
    assert out.getvalue() == "bar  10%\nbar  50%\nINFO a message\ninner  20%\n"
    stream.close()
    assert out.getvalue().endswith("inner  20%\nbar 100%\n")


def test_a_program_writing_to_a_file_logs_each_redraw_and_each_message_once(tmp_path):
    log = tmp_path / "rule.log"
    with open(log, "w") as handle:
        subprocess.run([sys.executable, "-c", PROGRAM], stderr=handle, check=True, timeout=120)
    text = log.read_text()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines.count("INFO before the bar") == 1 and lines.count("INFO after the bar") == 1
    bars = [line for line in lines if line.startswith("work:")]
    assert 2 <= len(bars) <= 20 and "50/50" in bars[-1]
