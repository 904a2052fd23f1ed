"""Keep .ci/min-constraints.txt and the lower bounds of pyproject.toml in step.

``python .ci/check_min_pins.py``
    every ``>=`` bound of the dependencies and of the ``test`` extra has a pin in
    the constraints file, equal to the bound (1.5 == 1.5.0).
``python .ci/check_min_pins.py --installed``
    also: the running environment holds exactly the pinned versions (a pin that
    no requirement pulls in would otherwise be silently ignored by pip).

Exit status 1, with one line per problem, when they disagree.
"""

import re
import sys
from importlib import metadata
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / ".ci" / "min-constraints.txt"
EXTRAS = ("test",)


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version):
    """``"1.5"`` -> ``(1, 5)``; trailing zeros dropped so that 1.5 == 1.5.0, and
    anything after the release numbers (``rc1``, ``.post1``) left out."""
    parts = [int(p) for p in re.match(r"\d+(?:\.\d+)*", version).group(0).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def lower_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    bounds = {}
    for req in requirements:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req).group(1)
        bound = re.search(r">=\s*([0-9][0-9.]*)", req)
        if bound:
            bounds[normalize(name)] = bound.group(1)
    return bounds


def pins():
    pinned = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pinned[normalize(name)] = version.strip()
    return pinned


def main(argv):
    bounds, pinned = lower_bounds(), pins()
    problems = []
    for name, bound in sorted(bounds.items()):
        if name not in pinned:
            problems.append(f"{name}>={bound} (pyproject.toml) has no pin in {CONSTRAINTS.name}")
        elif release(pinned[name]) != release(bound):
            problems.append(f"{name}: pyproject.toml says >={bound}, "
                            f"{CONSTRAINTS.name} pins {pinned[name]}")
    if "--installed" in argv:
        for name, version in sorted(pinned.items()):
            try:
                found = metadata.version(name)
            except metadata.PackageNotFoundError:
                problems.append(f"{name}=={version} is pinned but not installed")
                continue
            if release(found) != release(version):
                problems.append(f"{name}=={version} is pinned but {found} is installed")
    for line in problems:
        print(f"check_min_pins: {line}", file=sys.stderr)
    if not problems:
        print(f"check_min_pins: {len(pinned)} pins agree with pyproject.toml"
              + (" and the environment" if "--installed" in argv else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
