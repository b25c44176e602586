#!/usr/bin/env python3
"""Print the mutation score of the last `mutmut run` and list the surviving mutants.

Run by `make mutation` after mutmut; exits 1 when the score is below TARGET (90%) so a
run that misses it says so. Reads mutmut's own summary (`mutmut export-cicd-stats`) and
its result list (`mutmut results`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TARGET = 0.90
MUTMUT = str(Path(sys.executable).with_name("mutmut"))


def main() -> int:
    subprocess.run([MUTMUT, "export-cicd-stats"], check=True, capture_output=True)
    stats = json.loads(Path("mutants/mutmut-cicd-stats.json").read_text())
    tested = stats["killed"] + stats["survived"] + stats["timeout"] + stats["suspicious"]
    killed = stats["killed"] + stats["timeout"]
    score = killed / tested if tested else 0.0
    print(f"mutants: {stats['total']}, tested {tested}, killed {killed} "
          f"(timeouts count as killed), survived {stats['survived']}, "
          f"no tests {stats['no_tests']}, skipped {stats['skipped']}")
    print(f"mutation score: {score:.1%} (target {TARGET:.0%})")
    results = subprocess.run([MUTMUT, "results"], capture_output=True, text=True, check=False)
    survivors = [line.strip() for line in results.stdout.splitlines() if "survived" in line]
    if survivors:
        print("survivors (`mutmut show NAME` prints the change):")
        for line in survivors:
            print(f"  {line}")
    return 0 if tested and score >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
