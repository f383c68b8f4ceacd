"""Label Studio from Dagster: the labelstudio_sync job pushes the exported tasks and pulls the
annotations back into landing/reviews, the same functions as `feedback-pipeline labelstudio`,
so a schedule keeps reviewers' work flowing without anyone at a terminal."""

from datetime import UTC, datetime

import dagster as dg

from feedback_pipeline.core.labelstudio import (
    exported_task_paths,
    load_import_tasks,
    project_instruction,
)
from feedback_pipeline.resources import (
    DEFAULT_LABEL_STUDIO_URL,
    LabelStudioResource,
    PipelineResource,
)

DEFAULT_URL = DEFAULT_LABEL_STUDIO_URL


class LabelStudioConfig(dg.Config):
    """How the projects are named and exported, and optionally another server than the
    `labelstudio` resource's; the token is the resource's (LABEL_STUDIO_API_KEY), never run
    config, so it is not in the event log."""

    url: str = ""
    title_prefix: str = "feedback-pipeline"
    export_format: str = "JSON"


@dg.op(description="Imports every exported review and follow-up task not yet in its Label "
                   "Studio project (one project per task type, created on first use).",
       out=dg.Out(dg.Nothing))
def push_to_label_studio(context: dg.OpExecutionContext, config: LabelStudioConfig,
                         pipeline: PipelineResource, labelstudio: LabelStudioResource) -> None:
    from feedback_pipeline.core.labelstudio_api import ensure_projects, push_tasks

    tasks = load_import_tasks(exported_task_paths(pipeline.storage.exports_dir))
    client = labelstudio.client(config.url or None)
    projects = ensure_projects(client, title_prefix=config.title_prefix,
                               instruction=project_instruction(pipeline.storage.exports_dir))
    summary = push_tasks(client, projects, tasks)
    for line in summary.lines():
        context.log.info(line)
    context.log.info(f"imported {summary.total_imported} of {len(tasks)} exported task(s)")


@dg.op(description="Lands new and updated annotations of every project in "
                   "landing/reviews/<today UTC>/; the landing sensor then takes them in.",
       ins={"pushed": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
def pull_from_label_studio(context: dg.OpExecutionContext, config: LabelStudioConfig,
                           pipeline: PipelineResource, labelstudio: LabelStudioResource) -> None:
    from feedback_pipeline.core.labelstudio_api import find_projects, pull_annotations

    client = labelstudio.client(config.url or None)
    projects = find_projects(client, title_prefix=config.title_prefix)
    review_day = datetime.now(UTC).date().isoformat()
    summary = pull_annotations(client, projects, pipeline.storage.landing_dir("reviews"),
                               review_day, config.export_format)
    for line in summary.lines():
        context.log.info(line)
    context.log.info(f"landed {summary.written} annotation(s) in landing/reviews/{review_day}")


@dg.job(description="Push the exported tasks to Label Studio, then pull the annotations back "
                    "(docs/operations.md, \"Label Studio\").")
def labelstudio_sync():
    pull_from_label_studio(pushed=push_to_label_studio())


labelstudio_sync_schedule = dg.ScheduleDefinition(
    name="labelstudio_sync_schedule",
    job=labelstudio_sync,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Hourly: new tasks out to Label Studio, new annotations in.",
)
