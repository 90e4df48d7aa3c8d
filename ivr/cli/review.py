"""Commands on what callers said, for trainers: ``review`` (the misrouted utterances'
queue, labelling), ``report voc`` (the monthly export) and ``data validate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ivr.cli.common import open_store, parse_when
from ivr.cli.printing import print_cluster, print_json, print_label
from ivr.errors import IvrError
from ivr.project import Project


async def cmd_review(args: argparse.Namespace) -> int:
    """The trainers' review queue: list and show clusters, label them (docs/review.md)."""
    from ivr.trainer import labelling
    from ivr.trainer.review import find_cluster, find_item, resolve, review_queue

    project: Project = args.project_obj
    store, _ = open_store(project)
    since = parse_when(args.since) if getattr(args, "since", None) else None
    until = parse_when(args.until) if getattr(args, "until", None) else None
    words = project.locale_file  # how its callers correct themselves (review_signals.py)
    if args.action == "list":
        clusters = review_queue(store, project.locale, since, until, words)
        for cluster in clusters:
            s = cluster.summary()
            if args.json:
                print_json(s)
                continue
            print(f"{s['id']}  {s['score']:5.1f}  {s['intent']:20s} {s['calls']:4d} call(s) "
                  f"{s['items']:4d} utterance(s)  {' | '.join(s['texts'][:3])}  "
                  f"[{', '.join(f'{k} {v}' for k, v in s['signals'].items())}]")
        if not args.json:
            print(f"({len(clusters)} cluster(s), weightiest first; why: `ivr review show ID`)")
    elif args.action == "show":
        cluster = find_cluster(review_queue(store, project.locale, since, until, words),
                               args.cluster)
        print_json(cluster.as_dict()) if args.json else print_cluster(cluster)
    elif args.action == "label":
        items, cluster_id = resolve(store, args.target, project.locale, since, until, words)
        result = labelling.label_intent(project.with_locale(items[0].locale), store, items,
                                        args.intent, args.by, cluster=cluster_id)
        return print_label(result, args.json)
    elif args.action == "asr":
        item = find_item(store, args.target, words)
        result = labelling.mark_asr_error(project.with_locale(item.locale), store, item,
                                          args.said, args.by, intent=args.intent)
        if not args.json:
            print(f"ASR error recorded for {item.key} (heard “{item.text}”)")
        return print_label(result, args.json)
    elif args.action == "synonym":
        items, cluster_id = (resolve(store, args.item, project.locale, since, until, words)
                             if args.item else ([], None))
        done = labelling.add_synonym(project, store, args.key, args.mandarin, args.dialect,
                                     args.by, items, cluster=cluster_id, force=args.force)
        print(f"added {done.dialect}: {done.key} → {done.mandarin} to {done.file}; "
              "it takes effect at the next `ivr train`")
    return 0


async def cmd_report(args: argparse.Namespace) -> int:
    """The monthly voice-of-the-customer export: a CSV and a chart image."""
    from ivr.trainer.voc import Month, export, this_month

    month = Month.parse(args.month or this_month())
    store, _ = open_store(args.project_obj)
    # One locale per report (the global one, zh by default): two caller populations'
    # figures summed under shared intent names would describe neither.
    locale = args.project_obj.locale
    csv_path, chart, rows = export(store, month, Path(args.out), locale)
    total = rows[-1]
    print(f"{month.name} ({locale}): {total['calls']} calls, containment "
          f"{total['containment']:.1%}, {total['misrouted_calls']} with a misroute signal")
    for row in rows[:-1][:10]:
        print(f"  {row['intent']:22s} {row['calls']:6d} calls  containment "
              f"{row['containment']:.0%}  misrouted {row['misrouted_calls']}")
    print(f"written: {csv_path} and {chart}")
    return 0


async def cmd_data(args: argparse.Namespace) -> int:
    """``ivr data validate``: one ``path:line: message`` line per problem (docs: README)."""
    from ivr.trainer.data_validation import summary, validate

    report = validate(args.project_obj)
    for problem in report.problems:
        print(problem)
    if report.problems:
        raise IvrError(f"{len(report.problems)} problem(s) in the project's data (above)")
    print(summary(report))
    return 0
