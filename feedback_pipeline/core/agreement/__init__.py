"""Inter-reviewer agreement that a statistician would sign: kappa, alpha, intervals, diagnosis.

The package: `statistics` (the coefficients and their bootstrap), `inputs` (review rows to the
shapes they read) and `report` (the day's report and its gate value). The confusion-matrix plot
is drawn by the stage layer (`stages.common.write_confusion_heatmap`).

Duplicate reviews (several reviewers on one trace) measure whether the rubric is read the same way.
Every figure carries its level of measurement and the number of items and reviewers it rests on,
and a bootstrap interval over items, so a gate can be declared on the point estimate or on the
lower bound. Too few duplicate-reviewed items is reported as its own reason, never as a pass.

Why several coefficients, each under its own name: "kappa" with more than two reviewers is not
one statistic. Cohen's kappa is defined for exactly two reviewers; its multi-reviewer
generalisations differ in how chance agreement is modelled, and they give different figures on
the same data (Conger's exceeds Fleiss' whenever reviewers' label shares differ). Reporting one
of them under another's name makes a gate incomparable with the literature and across teams,
so every coefficient here is reported, intervalled and gated under its exact name, with its
formula and missing-label rule in ``statistic_definitions`` (``STATISTIC_DEFINITIONS``).

Definitions used throughout:

- An *item* is a trace (pairwise labels) or a (trace, candidate) pair (pointwise scores).
  Only items with at least two reviews (after the dedup below) enter any coefficient.
- When one reviewer reviewed the same item more than once, only their latest review is kept
  (latest by ``reviewed_at`` when that column exists, else the last row in input order); the
  number dropped is reported as ``self_duplicates_dropped``.
- ``cohens_kappa``: Cohen (1960), only when exactly two reviewers rated the duplicate items;
  otherwise None, and ``cohens_kappa_note`` says why. A gate declared on ``cohens_kappa`` over
  more reviewers falls back to ``conger_kappa`` (the figure this module used to report under
  that name) and says so in ``gated_statistic`` / ``gated_statistic_note``, so a running
  pipeline keeps its gate while the manifest shows what was really measured.
- ``conger_kappa``: Conger (1980), taken over every within-item pair of reviews by different
  reviewers: ``observed_agreement`` is the share of those pairs that agree,
  ``chance_agreement`` the mean over the same pairs of sum_c p_a(c) p_b(c), with p_r reviewer
  r's own label distribution over all their reviews of duplicate-reviewed items. With two
  reviewers it is Cohen's kappa. It rests each reviewer's chance model on all their reviews, so
  pairs that share only a few items do not bias it as a mean of pairwise kappas would; the
  ``pairwise`` table still gives each pair's own Cohen's kappa for diagnosis.
- ``fleiss_kappa``: Fleiss (1971), one pooled label distribution for all reviewers. Items rated
  by different numbers of reviewers use the per-item form: P_i = sum_c n_ic (n_ic - 1) /
  (n_i (n_i - 1)) over items with n_i >= 2, P_bar their unweighted mean, p_c the pooled share
  of label c among those items' ratings, P_e = sum_c p_c^2 (``FLEISS_METHOD``). With complete
  data it is Fleiss' published statistic.
- ``gwet_ac1``: Gwet (2008) multi-rater AC1: the same P_bar as Fleiss, chance
  p_e = 1/(q - 1) sum_c pi_c (1 - pi_c), pi_c the mean over items of the share of that item's
  ratings in c, q the number of declared labels. It does not collapse when one label dominates.
- Krippendorff's alpha (``krippendorff_alpha_nominal`` on labels; ``alpha_ordinal``,
  ``alpha_interval`` and ``alpha_ratio`` on 1-5 scores): the coincidence-matrix definition,
  which handles missing labels natively; the point estimates come from the ``krippendorff``
  package.
- Bootstrap intervals resample items (not reviews) with replacement, ``bootstrap`` times, from a
  seeded ``numpy.random.Generator``; the interval is the 2.5 / 97.5 percentile of the replicates
  in which the statistic is defined. The bootstrap mean minus the estimate is reported as its
  bias; when that exceeds half the bootstrap standard error, ``ci_warning`` says the percentile
  interval is shifted. All label coefficients share the same replicates.
- Gold check: a miss is a reviewer's label on a gold trace that differs from the gold label.
  A reviewer with at least ``MIN_GOLD_ITEMS`` gold answers is flagged when a one-sided binomial
  test of their misses against a baseline miss rate gives p < 0.05 / (reviewers tested),
  Bonferroni, and their own miss rate exceeds that baseline. The baseline is the posterior mean
  of the *other* reviewers' pooled miss rate (so a careless reviewer does not raise their own
  baseline) under a Beta(alpha, beta) prior (``GOLD_MISS_PRIOR``, the policy's
  ``gold_miss_prior``): (others' misses + alpha) / (others' answers + alpha + beta). Without
  the prior, others who missed nothing give a baseline of 0 and any single miss has p = 0;
  with the default Beta(1, 19) (a 5% prior miss rate worth 20 answers) 1 miss in 6 against
  0 of 60 is p = 0.07, not flagged, while 5 in 6 against 1 of 60 is p < 1e-7. The baseline is
  reported as ``gold_baseline_rate``, the raw pooled rate as ``others_miss_rate``.
  Gold traces stay in the agreement figures: their duplicate reviews are real ones.
- Criteria: for each pair of reviews that disagree on the outcome, a rubric field counts when the
  two reviewers marked it differently on any candidate (``criteria_json``); its share is over
  the disagreeing pairs whose criteria both parse.
"""


from feedback_pipeline.core.agreement.inputs import (
    DEMONSTRATION_COLUMNS,
    KEY_COLUMNS,
    LABEL_COLUMNS,
    NOT_A_VOTE,
    SCORE_COLUMNS,
    STAGE_COLUMNS,
    demonstration_answers,
    disagreeing_pairwise_traces,
    pairwise_input,
    pairwise_input_streamed,
    pointwise_scores,
    review_inputs_streamed,
)
from feedback_pipeline.core.agreement.report import (
    CRITERION_COLUMNS,
    GATE_STATISTICS,
    GOLD_FLAG_ALPHA,
    GOLD_MISS_PRIOR,
    MARKDOWN_ROWS,
    MIN_GOLD_ITEMS,
    PAIRWISE_COLUMNS,
    REVIEWER_COLUMNS,
    SCORE_STATISTICS,
    SLICE_COLUMNS,
    STATISTIC_DEFINITIONS,
    AgreementReport,
    agreement_report,
    format_figure,
    gate_value,
    gold_answers,
)
from feedback_pipeline.core.agreement.statistics import (
    ALPHA_LEVELS,
    CI_LEVEL,
    FLEISS_METHOD,
    KAPPA_METHOD,
    NO_SLICE,
    PAIRWISE_LABELS,
    SCORE_LEVELS,
    SCORE_VALUES,
    KappaResult,
    cohen_kappa,
    kappa_from_matrix,
    krippendorff_alpha,
)

__all__ = [
    "format_figure",
    "ALPHA_LEVELS",
    "AgreementReport",
    "CI_LEVEL",
    "CRITERION_COLUMNS",
    "DEMONSTRATION_COLUMNS",
    "FLEISS_METHOD",
    "GATE_STATISTICS",
    "GOLD_FLAG_ALPHA",
    "GOLD_MISS_PRIOR",
    "KAPPA_METHOD",
    "KEY_COLUMNS",
    "KappaResult",
    "LABEL_COLUMNS",
    "MARKDOWN_ROWS",
    "MIN_GOLD_ITEMS",
    "NOT_A_VOTE",
    "NO_SLICE",
    "PAIRWISE_COLUMNS",
    "PAIRWISE_LABELS",
    "REVIEWER_COLUMNS",
    "SCORE_COLUMNS",
    "SCORE_LEVELS",
    "SCORE_STATISTICS",
    "SCORE_VALUES",
    "SLICE_COLUMNS",
    "STAGE_COLUMNS",
    "STATISTIC_DEFINITIONS",
    "agreement_report",
    "cohen_kappa",
    "demonstration_answers",
    "disagreeing_pairwise_traces",
    "gate_value",
    "gold_answers",
    "kappa_from_matrix",
    "krippendorff_alpha",
    "pairwise_input",
    "pairwise_input_streamed",
    "pointwise_scores",
    "review_inputs_streamed",
]
