#!/usr/bin/env python3
"""Structural checks of the deployment files that no off-the-shelf linter makes.

    check-deploy.py kustomization deploy/k8s
        every manifest in the folder is listed by its kustomization.yaml, and every
        listed file exists (so kubernetes-validate and checkov see what kubectl applies)

    check-deploy.py tofu deploy/tofu
        every .tf file parses (python-hcl2); every `var.X` the module references is
        declared; every declared variable is used, has a type and a description; every
        output has a description; README.md names every variable and output

Exits 1 with one line per finding, naming the file.
"""
import pathlib
import re
import sys


def kustomization(folder: pathlib.Path) -> list[str]:
    import yaml

    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    listed = k.get("resources") or []
    problems = [f"{folder}/kustomization.yaml lists {r}, which does not exist" for r in listed if not (folder / r).is_file()]
    present = sorted(p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")
    problems += [f"{folder}/{p} is not listed in kustomization.yaml's resources" for p in present if p not in listed]
    return problems


def tofu(folder: pathlib.Path) -> list[str]:
    import hcl2

    problems: list[str] = []
    declared: dict[str, dict] = {}
    outputs: dict[str, dict] = {}
    referenced: dict[str, str] = {}
    for tf in sorted(folder.glob("*.tf")):
        text = tf.read_text()
        try:
            doc = hcl2.loads(text)
        except Exception as e:  # the parser's own message names the line
            problems.append(f"{tf}: does not parse: {e}")
            continue
        for block in doc.get("variable", []):
            for name, body in block.items():
                declared[name.strip('"')] = body
        for block in doc.get("output", []):
            for name, body in block.items():
                outputs[name.strip('"')] = body
        # References in the text, comments removed (a comment may say var.x in prose).
        code = re.sub(r"#[^\n]*|//[^\n]*", "", text)
        for m in re.finditer(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", code):
            referenced.setdefault(m.group(1), f"{tf}:{code.count(chr(10), 0, m.start()) + 1}")
    for name, where in sorted(referenced.items()):
        if name not in declared:
            problems.append(f"{where}: var.{name} is referenced but no variable \"{name}\" is declared")
    for name, body in sorted(declared.items()):
        if name not in referenced:
            problems.append(f"{folder}: variable \"{name}\" is declared but never used")
        for key in ("type", "description"):
            if key not in body:
                problems.append(f"{folder}: variable \"{name}\" has no {key}")
    for name, body in sorted(outputs.items()):
        if "description" not in body:
            problems.append(f"{folder}: output \"{name}\" has no description")
    readme = (folder / "README.md").read_text() if (folder / "README.md").is_file() else ""
    for kind, names in (("variable", declared), ("output", outputs)):
        for name in sorted(names):
            if f"`{name}`" not in readme:
                problems.append(f"{folder}/README.md does not document {kind} `{name}`")
    return problems


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("kustomization", "tofu"):
        print(__doc__, file=sys.stderr)
        return 2
    check = kustomization if sys.argv[1] == "kustomization" else tofu
    problems = check(pathlib.Path(sys.argv[2]))
    for p in problems:
        print(f"check-deploy: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
