"""``brats-seg models [PATH ...] [--json]``: the models available, and what they expect."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list shipped models and describe model files or folders")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="checkpoint (.safetensors), MONAI bundle folder or CaPTk DeepMedic folder")
    p.add_argument("--families", action="store_true", help="list the model families instead")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _families() -> list[dict[str, object]]:
    from ..core.models.registry import FAMILIES

    return [{"family": k, "dims": v[2], "description": v[3], "source": v[4]} for k, v in FAMILIES.items()]


def run(args: argparse.Namespace) -> int:
    from ..core.models.registry import WEIGHTS_DIR, list_models

    if args.families:
        fams = _families()
        if args.json:
            print(json.dumps(fams, indent=2))
        else:
            for f in fams:
                print(f"{f['family']:<10} {f['dims']}D  {f['description']}  [{f['source']}]")
        return 0
    models = list_models(args.paths)
    if args.json:
        print(json.dumps(models, indent=2))
        return 1 if any("error" in m for m in models) else 0
    if not any(m["shipped"] for m in models):
        print(f"no shipped models (none in {WEIGHTS_DIR})")
    for m in models:
        tag = "shipped" if m["shipped"] else "path"
        if "error" in m:
            print(f"[{tag}] {m['source']}\n  error: {m['error']}")
            continue
        prov = m["provenance"]
        prov_text = "; ".join(f"{k}: {v}" for k, v in prov.items() if isinstance(v, (str, int, float))) or "-"
        print(f"[{tag}] {m['name']}  ({m['source']})\n"
              f"  family    {m['family']} ({m['dims']}D), orientation {m['orientation']}\n"
              f"  channels  {', '.join(m['channels'])}; normalisation {m['normalization'].get('kind')}\n"
              f"  output    {m['output']}: {', '.join(m['outputs'])}; label scheme {m['label_scheme']}\n"
              f"  window    {m['patch_size'] or 'whole volume'}\n"
              f"  provenance {prov_text}")
    return 1 if any("error" in m for m in models) else 0
