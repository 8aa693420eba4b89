"""MODEL_CARD.md for an artifact version: data, teacher, students, baseline and topic figures side by side."""

from __future__ import annotations

from pathlib import Path

from tweetdesk.models import labels as L
from tweetdesk.records import TOPICS


def _fmt_cmp(block: dict) -> str:
    rows = ["| labels | largest share | smallest topic | normalised entropy | macro-F1 vs negativereason | accuracy |",
            "|---|---|---|---|---|---|"]
    for name, v in block.items():
        if name == "n":
            continue
        b, a = v["balance"], v["agreement"]
        rows.append(f"| {name} | {b['largest_share']:.1%} | {b['smallest_count']} | {b['normalised_entropy']:.3f} | "
                    f"{a['macro_f1']:.3f} | {a['accuracy']:.3f} |")
    return "\n".join(rows)


def _targets(metrics: dict) -> str:
    return "; ".join(f"{k} {'met' if v else '**missed**'}" for k, v in metrics.get("targets", {}).items())


def _f(x, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def side_by_side(metrics: dict) -> str:
    """The figures table: shipped LSTMs, teacher, baseline on the same test split."""
    s, t = metrics["sentiment_test"], metrics["topic_vs_negativereason_test"]
    b = metrics.get("baseline_sentiment_test") or {}
    te = metrics.get("teacher") or {}
    ts, tt = te.get("sentiment_test") or {}, te.get("topic_vs_negativereason_test") or {}
    wk = te.get("weak_targets_vs_negativereason_test") or {}
    rt = te.get("reasons_teacher_vs_negativereason_test")
    reasons_row = ([f"| reasons teacher: MiniLM fine-tuned on the training split's negativereason (training only) | – | – | "
                    f"{_f(rt.get('macro_f1'))} |"] if rt else [])
    return "\n".join([
        f"| model (test split) | sentiment accuracy | sentiment macro-F1 (n={s['n']}) | topic macro-F1 vs negativereason (n={t['n']}) |",
        "|---|---|---|---|",
        f"| **shipped LSTMs** | **{_f(s['accuracy'])}** | **{_f(s['macro_f1'])}** | **{_f(t['macro_f1'])}** |",
        f"| teacher: MiniLM fine-tuned (training only) | {_f(ts.get('accuracy'))} | {_f(ts.get('macro_f1'))} | {_f(tt.get('macro_f1'))} |",
        *reasons_row,
        f"| baseline: TF-IDF + logistic regression (C={b.get('C', '?')}) | {_f(b.get('accuracy'))} | {_f(b.get('macro_f1'))} | – |",
        f"| weak topic targets (LDA + description similarity) | – | – | {_f(wk.get('macro_f1'))} |",
    ])


def _lda_note(w: float) -> str:
    if w <= 0:
        return ("At inference the topic is the LSTM's alone: it learnt the LDA's half of its targets, and averaging the\n"
                "  LDA's posterior in again lowered validation agreement with negativereason. The LDA ships in `lda/` for\n"
                "  review and evaluation.")
    return (f"At inference its probabilities are averaged with the guided LDA's posterior over the eight names (weight {w:g};\n"
            "  unmapped LDA topics left out, the rest renormalised; a tweet with no word the LDA knows keeps the LSTM's).")


def _families_note(families: list) -> str:
    if not families:
        return ""
    names = "; ".join(" and ".join(f) for f in families)
    return (f"\n  The topic is decided family first: {names} are kinds of one complaint, so their probabilities count\n"
            "  together against each other topic's, and the more probable of them is the topic (`labels.decide_topics`).")


def _human_note(dist: dict) -> str:
    h = dist.get("topic_human_labels") or {}
    if not h.get("used"):
        return ""
    return (f", with the human `negativereason` of the training split's negative tweets that have one folded in (see "
            f"below; {h.get('training_tweets_and_copies', '?')} training tweets and augmented copies of them), early stopping "
            f"on the reasons of {h.get('held_out_for_early_stopping', '?')} training tweets held out of it")


def _human_section(dist: dict, te: dict) -> str:
    """Whether the training split's human negativereason trained the topic side: said plainly."""
    h = dist.get("topic_human_labels") or {}
    if not h.get("used"):
        return ("The human `negativereason` column is **never** used for training or early stopping: only to measure, and\n"
                "(on the training and validation splits, never the test split) to review seed words, descriptions and weights.")
    ht = te.get("human_topic_labels") or {}
    without = h.get("without") or {}
    fig = ""
    if without:
        fig = (f" Without it ({without.get('how', 'same teacher, same code with `TOPIC_HUMAN_LABELS = False`')}) the topic "
               f"LSTM's macro-F1 vs negativereason was {without.get('test_macro_f1', float('nan')):.4f} on the test split "
               f"(validation {without.get('val_macro_f1', float('nan')):.4f}).")
    return (
        "**Human topic labels in training (said plainly).** The topic targets on the weak labels and the teacher alone\n"
        "stalled near 0.65 macro-F1 vs negativereason on validation, so the **training split's** human `negativereason`\n"
        "is a further label source: for the training split's negative tweets whose reason maps to a topic (the table\n"
        "below, as the evaluation maps it) and for their augmented copies, the target's mass on the five topics with a human counterpart moves to\n"
        "the human's topic (\"Flight Booking Problems\": Online Booking and Reservation Issue in the soft target's\n"
        "proportion); its mass on Extra Charges and Seating Preferences, which no reason covers, stays"
        f"{' (the teacher' + chr(39) + 's topic head learnt the same targets)' if ht.get('used') else ''}. "
        "A tenth of those training tweets (and their copies) are held out of training to choose the epoch. "
        "The validation and test splits' reasons train nothing: the figures below are measured against reasons the\n"
        f"models never saw, but they measure a model that learnt the same annotators' labelling of other tweets.{fig}"
    )


def _reasons_teacher(info: dict | None) -> str:
    if not info:
        return ""
    h, c = info.get("history", {}), info.get("config", {})
    return (f"""**Reasons teacher** (training only): a second MiniLM whose topic head learns only the training split's human
`negativereason`, mapped to topics as below, on {info.get('trained_on', '?')} tweets; {info.get('held_out', '?')} more are held out
to choose its epoch ({c.get('max_epochs', '?')} at most; macro-F1 vs their reasons {', '.join(f'{x:.4f}' for x in h.get('val_macro_f1', []))}
per epoch, best epoch {h.get('best_epoch', '?')}; {info.get('seconds', '?')} s with its labelling). It labels the training tweets and
their augmented copies for the topic LSTM. Its weights stay in the work directory (`teacher/<version>/reasons/`).
""")


def _reasons_share_note(share: dict | None) -> str:
    if not share:
        return ""
    return (f"; then a training tweet with a mapped reason moves {share.get('labelled', 0):g} of its target, and an augmented\n"
            f"  copy of one {share.get('copy', 0):g}, to the reasons teacher's probabilities (its mass on Extra Charges and Seating\n"
            "  Preferences kept: the reasons never name them)")


def _kept_note(kept: dict | None) -> str:
    if not kept:
        return ""
    ts = kept.get("teacher_sentiment_test") or {}
    fig = f", test {ts['accuracy']:.4f} / {ts['macro_f1']:.4f}" if ts.get("accuracy") is not None else ""
    origin = kept.get("distilled_in", kept["version"])
    where = "" if origin == kept["version"] else f" (which kept it from {origin})"
    return (f"kept unchanged from version {kept['version']}{where} (`tweetdesk train --sentiment-from`); it was distilled\n"
            f"  in {origin} from teacher {kept.get('teacher') or '?'}{fig}; the teacher figures above are this version's. ")


def write_model_card(folder: Path, manifest: dict, metrics: dict) -> None:
    s, t, w = metrics["sentiment_test"], metrics["topic_vs_negativereason_test"], metrics["topic_vs_weak_labels_test"]
    d = manifest["data"]
    cmp = metrics["label_comparison"]
    te = manifest.get("teacher", {})
    tc, th = te.get("teacher_config", {}), te.get("history", {})
    ac = te.get("augment_config", {})
    dist = manifest.get("distillation", {})
    hp = manifest["hyperparameters"]
    mapping_rows = "\n".join(f"| {k} | {v} |" for k, v in L.NEGATIVEREASON_TO_TOPIC.items())
    counts_rows = ""
    if "all" in cmp:
        counts_rows = "\n".join(
            f"| {topic} | {cmp['all']['earlier_lda_file']['balance']['counts'][topic]} | "
            f"{cmp['all']['ours_lda_weak_labels']['balance']['counts'][topic]} | "
            f"{cmp['all']['ours_topic_lstm']['balance']['counts'][topic]} |"
            for topic in TOPICS
        )
    w_lda = float(manifest.get("topic_lda_weight", 0.0))
    reused = te.get("from_version") not in (None, manifest["version"])
    text = f"""# Model card: tweetdesk {manifest['version']}

Created {manifest['created']} with torch {manifest['torch']}. Two kinds of BiLSTM classifier for customer tweets
to airlines, **sentiment** (negative / neutral / positive) and **topic** (the eight ticket queues), distilled from a
fine-tuned MiniLM teacher that is used only in training. Training took {manifest.get('training_seconds') or '?'} s on a
shared 2-core machine (torch {manifest.get("torch_threads", "?")} thread(s), load average {manifest.get("load_average", {}).get("start", "?")} at the start): teacher {te.get('seconds', '?')} s{' (in version ' + str(te.get('from_version')) + ', reused with `--reuse-teacher`)' if reused else ''}, students {manifest.get('student_seconds', '?')} s.

Targets on the test split: {_targets(metrics)}.

## Figures, side by side (same test split)

{side_by_side(metrics)}

## Data
- `{d['file']}` (sha256 `{d['sha256'][:16]}…`): Twitter US Airline Sentiment (Crowdflower, Feb 2015),
  {d['rows']} rows. License CC BY-NC-SA 4.0 (non-commercial): these weights inherit it, so an operator may not
  use them commercially without a licence of their own.
- No X content: X's Developer Agreement forbids training ML models on X data. `train --corrections` adds only
  corrections of tweets replayed from a file the operator may train on; tweets ingested from X are left out.
- **Deduplicated before splitting**: {d['duplicate_ids']} repeated tweet_ids and then {d['duplicate_texts']} repeated
  texts (normalised: lower case, URLs removed, whitespace collapsed) dropped, first row kept -> {d['unique']} tweets.
  So no test tweet has a copy in training.
- Split: stratified on sentiment, seed {manifest['split_seed']}, 80/10/10 -> train {d['split']['train']},
  validation {d['split']['val']}, test {d['split']['test']}. Teacher, students and baseline use the same split.

## Teacher (training only)
{te.get('encoder', 'all-MiniLM-L6-v2')}, mean-pooled, with a sentiment head and a topic head, fine-tuned on the
training split: sentiment cross-entropy on the human labels (class weight (inverse frequency)^{tc.get('class_weight_power', '?')},
sample weight = the annotators' confidence) + {tc.get('topic_loss_weight', '?')} x cross-entropy against the weak topic targets.
AdamW lr {tc.get('lr', '?')}, batch {tc.get('batch_size', '?')}, {tc.get('max_len', '?')} word pieces, linear warm-up and decay over
{tc.get('max_epochs', '?')} epochs at most; the epoch is chosen on validation (accuracy + macro-F1): validation accuracy
{', '.join(f'{x:.4f}' for x in th.get('val_accuracy', []))} / macro-F1 {', '.join(f'{x:.4f}' for x in th.get('val_macro_f1', []))}
per epoch, best epoch {th.get('best_epoch', '?')}. Its weights stay out of the artifact (about 45 MB; saved under the
work directory's `teacher/` folder with its lessons).

**Weak topic targets**: {te.get('weak_topic_targets', {}).get('encoder_weight', '?')} x a softmax (temperature
{te.get('weak_topic_targets', {}).get('temperature', '?')}) of the pretrained encoder's cosine similarity to each topic's
reviewed one-line descriptions (the closest description counts; `topic_mapping.toml`, `[descriptions]`) + the rest x
the guided LDA's posterior over the eight names. The LDA: gensim LdaModel fitted on the cleaned tokens of the training
split's negative tweets ({manifest.get('lda_fitted_on', '?')}), seeded towards the reviewed seed words of each topic
(mapping version {manifest['topic_mapping_version']}, copied into this folder; `tweetdesk lda` prints its topics).

{_reasons_teacher(te.get('reasons_teacher'))}
## Students (what ships)
The teacher labels {dist.get('training_tweets', '?')} training tweets, {dist.get('augmented_copies', '?')} augmented copies of them
(Tang et al. 2019: {ac.get('copies', '?')} copies a tweet; each word masked with p={ac.get('p_mask', '?')} or swapped for a
word of the same part of speech with p={ac.get('p_pos', '?')}; then an n-gram (n <= {ac.get('max_ngram', '?')}) kept with
p={ac.get('p_ngram', '?')}) and {dist.get('earlier_file_tweets', '?')} tweets of the earlier labelling file that are in
neither validation nor test (nor training).

- **Sentiment**: {_kept_note(manifest.get('sentiment_from'))}{hp['sentiment_members']} BiLSTM(s) (more than one: seeds differ, probabilities averaged) on cleaned lemmas with
  stop words kept plus "?", "!", link and mention markers. Loss on a training tweet: {dist.get('soft_weight', '?')} x
  cross-entropy against the teacher's probabilities + the rest x against the human label (class weight (inverse
  frequency)^{hp.get('sentiment_class_weight_power', '?')}, annotator confidence as sample weight); {"the same on an augmented copy, with its source tweet's label and confidence; on the earlier file's tweets" if dist.get('copies_keep_label') else "on the other texts"} the
  teacher's alone. Word embeddings start from the fine-tuned teacher's encoder run on each word alone (PCA to
  the embedding size). Early stopping on the validation split's human labels. Config {hp['sentiment']}.
  **Test: accuracy {s['accuracy']:.4f}, macro-F1 {s['macro_f1']:.4f}** (n={s['n']}; per class
  {', '.join(f'{k} {v:.3f}' for k, v in s['per_class_f1'].items())}).
- **Topic**: one BiLSTM on cleaned lemmas without stop words. Target on a training tweet:
  {dist.get('topic_teacher_share', '?')} x the teacher's topic probabilities + the rest x the weak target{_human_note(dist)}; on the
  other texts the teacher's{_reasons_share_note(dist.get('reasons_share'))}. Word embeddings start from the pretrained encoder's word vectors. Early stopping
  {"on the held-out training tweets' reasons" if (dist.get('topic_human_labels') or {}).get('used') else "on the teacher's + weak targets of the validation split"} (never validation's `negativereason`). Config {hp['topic']}.
  {_lda_note(w_lda)}{_families_note(manifest.get("topic_families") or [])}

{_human_section(dist, te)}

- On the shipped sample (`{metrics.get('sample_agreement', {}).get('file', '?')}`, {metrics.get('sample_agreement', {}).get('n', 0)} tweets
  written for this project, each with the topic and sentiment its writer meant, all eight topics): topic
  accuracy {_f(metrics.get('sample_agreement', {}).get('topic', {}).get('accuracy'))}, macro-F1 over the eight
  {_f(metrics.get('sample_agreement', {}).get('topic', {}).get('macro_f1'))}; sentiment accuracy
  {_f(metrics.get('sample_agreement', {}).get('sentiment', {}).get('accuracy'))}.
- Topic agreement with the guided LDA's own labels, test split: accuracy {w['accuracy']:.4f}, macro-F1 {w['macro_f1']:.4f}.
- **Agreement with the human negativereason, test negatives: macro-F1 {t['macro_f1']:.4f}**, accuracy
  {t['accuracy']:.4f} (n={t['n']}; per class {', '.join(f'{k} {v:.3f}' for k, v in t['per_class_f1'].items())}).

How that macro-F1 is computed: gold = test-split negative tweets whose `negativereason` maps to a topic by the table
below ("Can't Tell" and empty excluded). The human label "Flight Booking Problems" covers both "Online Booking" and
"Reservation Issue", so both sides are collapsed ("Online Booking / Reservation"). Macro-F1 is the unweighted mean F1
over the 5 resulting labels; a prediction of "Extra Charges" or "Seating Preferences" (no human counterpart) is a miss.

| negativereason | topic |
|---|---|
{mapping_rows}
| Can't Tell | (excluded) |

## Our labels vs the earlier LDA file
On the {cmp.get('all', {}).get('n', 0)} negative tweets in both our deduplicated data and
`airline_tweets_topic_labelled.csv` (joined on tweet_id); most are training tweets, so the "all" rows are partly
in-sample for the topic LSTM; the test-split rows are not.

All shared negative tweets:

{_fmt_cmp(cmp['all']) if 'all' in cmp else cmp.get('note', '')}

Test split only (n={cmp.get('test_split', {}).get('n', 0)}):

{_fmt_cmp(cmp['test_split']) if 'test_split' in cmp else ''}

Counts per topic (all shared negative tweets):

| topic | earlier file | our LDA labels | our topic model |
|---|---|---|---|
{counts_rows}

## Use and limits
- Unclassifiable: a tweet with no words left after cleaning gets sentiment and topic `unclassifiable` (score 0.0)
  and still a ticket (prefix GEN); {metrics.get('unclassifiable_in_test', 0)} test tweet(s), counted as errors above.
- A tweet about two things gets one topic; "Extra Charges" and "Seating Preferences" have no human yardstick here.
  Scores are softmax probabilities, not calibrated.
- 2015 US airline tweets in English: other brands, languages or eras will score lower.
- Reproduce: `pip install -e '.[train]'`, then `tweetdesk train --seed {manifest['split_seed']}`; `tweetdesk evaluate`
  rewrites reports/ (the baseline is retrained there; the teacher's figures are those measured at training).
"""
    (folder / "MODEL_CARD.md").write_text(text, encoding="utf-8")
