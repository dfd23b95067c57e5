"""``brats-seg models [PATH ...] [--json]``: the models available, and what they expect.

Also ``brats-seg models get NAME [--accept-licence]`` (download a publisher's model into the user's
models folder), ``models add PATH_OR_ZIP [--accept-licence]`` (the same from a downloaded file or folder,
offline) and ``models remove NAME`` (:mod:`napari_brats_seg.core.models.hub`).
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, describe, get, add or remove models",
                       description="List the shipped and installed models (with their Dice figures and the "
                                   "default) and describe model files or folders; 'models get NAME' downloads "
                                   "a publisher's pretrained model, 'models add PATH_OR_ZIP' installs one from "
                                   "a downloaded file or folder, 'models remove NAME' uninstalls it.")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="checkpoint (.safetensors), MONAI bundle folder or CaPTk DeepMedic folder; or "
                        "'get NAME', 'add PATH_OR_ZIP', 'remove NAME'")
    p.add_argument("--accept-licence", "--accept-license", dest="accept_licence", action="store_true",
                   help="with get/add: accept the model's licence (it is printed) without asking")
    p.add_argument("--quiet", action="store_true", help="with get: no download progress bar")
    p.add_argument("--families", action="store_true", help="list the model families instead")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _families() -> list[dict[str, object]]:
    from ..core.models.families import FAMILIES

    return [{"family": f.name, "dims": f.dims, "description": f.description, "source": f.source}
            for f in FAMILIES.values()]


def run(args: argparse.Namespace) -> int:
    from ..core.models.registry import WEIGHTS_DIR, list_models

    if args.paths and args.paths[0] in ACTIONS:
        return run_action(args)

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
        tag = "shipped" if m["shipped"] else ("installed" if m.get("installed") else "path")
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
        print(figures_text(m))
    print(default_text(models))
    return 1 if any("error" in m for m in models) else 0


# -- publishers' models: get / add / remove, and the Dice figures of the listing ----------------------
ACTIONS = ("get", "add", "remove")


def figures_text(info: dict) -> str:
    """The ``dice`` lines of one listed model (each record with what it was measured on)."""
    dice = (info.get("provenance") or {}).get("dice") or {}
    if not dice:
        return "  dice      no recorded figures (ranks last for the default)"
    lines = []
    for kind, rec in dice.items():
        if isinstance(rec, dict) and all(r in rec for r in ("WT", "TC", "ET")):
            lines.append(f"  dice      {kind}: WT {rec['WT']:.3f} / TC {rec['TC']:.3f} / ET {rec['ET']:.3f}"
                         f" ({rec.get('evaluated_on', 'cases not stated')})")
    return "\n".join(lines) or "  dice      no recorded figures (ranks last for the default)"


def default_text(models: list) -> str:
    """Which model ``segment``/``evaluate``/napari use without ``--model``, and why."""
    from ..core.models.registry import best_model, rank_score

    best = best_model([m for m in models if m.get("shipped") or m.get("installed")])
    if best is None:
        return "default: none (no shipped or installed model other than the cascade)"
    score, kind = rank_score(best)
    why = f"mean {kind.replace('_', '-')} Dice {score:.3f}" if score is not None else "no recorded figures"
    return (f"default: {best['name']} ({why}; the best installed model by the mean WT/TC/ET Dice of its "
            "cross-validated, else held-out, else reported record; the cascade is never the default)")


def _confirm_licence(entry, accept: bool) -> bool:
    import sys

    print(f"{entry.name}: {entry.title}\npublisher: {entry.publisher}\nlicence:\n{entry.licence}\n"
          f"{entry.licence_url}".rstrip(), file=sys.stderr)
    if accept:
        return True
    if not sys.stdin.isatty():
        print("brats-seg models: error: the licence must be accepted: pass --accept-licence", file=sys.stderr)
        return False
    return input("Accept this licence? [y/N] ").strip().lower() in ("y", "yes")


def run_action(args: argparse.Namespace) -> int:
    """``models get NAME``, ``models add PATH_OR_ZIP``, ``models remove NAME``."""
    import sys

    from ..core.models import hub

    action, rest = args.paths[0], args.paths[1:]
    if len(rest) != 1:
        what = "PATH_OR_ZIP" if action == "add" else "NAME"
        known = f" (known: {', '.join(hub.CATALOG)})" if action == "get" else ""
        print(f"brats-seg models {action}: error: expected one {what}{known}", file=sys.stderr)
        return 2
    target = rest[0]
    if action == "remove":
        print(f"removed {target} ({hub.remove_model(target)})")
        return 0
    if action == "get":
        entry = hub.CATALOG.get(target)
        if entry is None:
            print(f"brats-seg models get: error: {target!r} cannot be downloaded; known: "
                  f"{', '.join(hub.CATALOG)}", file=sys.stderr)
            return 2
        if not _confirm_licence(entry, args.accept_licence):
            return 2
        folder = hub.get_model(target, accept_licence=True, progress=not args.quiet)
    else:
        try:
            folder = hub.add_model(target, accept_licence=args.accept_licence)
        except hub.LicenceNotAccepted as exc:
            if not _confirm_licence(exc.entry, False):
                return 2
            folder = hub.add_model(target, accept_licence=True)
    print(f"installed {folder.name} -> {folder}")
    return 0
