"""nbgrader settings for this course. Loaded explicitly by graders/ (NbGraderAPI() alone would ignore it).

Paths are relative to the repository root: exercises are authored in solutions/<lab>/, released to labs/<lab>/,
and graded in build/grading/ (git-ignored).
"""

c = get_config()  # noqa: F821  (provided by traitlets when this file is loaded)

c.CourseDirectory.course_id = "llm-observability-labs"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "labs"
c.CourseDirectory.submitted_directory = "build/grading/submitted"
c.CourseDirectory.autograded_directory = "build/grading/autograded"
c.CourseDirectory.feedback_directory = "build/grading/feedback"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "__pycache__", "*.pyc", ".run", "build", "*.csv", "*.jsonl",
                            "*.db", "student_*"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# nbgrader's own list, with Execute replaced by graders/execution.py's GuardedExecute (below).
c.Autograde.autograde_preprocessors = [
    "graders.execution.GuardedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# An infinite loop costs its own cell: the kernel is interrupted and grading goes on; a kernel that ignores the
# interrupt (code catching KeyboardInterrupt) is restarted after a grace period and the cells before are re-run.
c.Execute.timeout = 30
c.Execute.interrupt_on_timeout = True
c.Execute.raise_on_iopub_timeout = False
c.Execute.startup_timeout = 60
c.GuardedExecute.interrupt_grace_seconds = 5.0

# A warning printed to stderr must not zero a correct answer (nbgrader treats any stderr in a test cell as 0).
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"Warning|WARNING|warn\("

# A huge print costs nothing but its own output: bytes are cut as they arrive (per cell and per notebook, with an
# "[output cut: N bytes]" line), then nbgrader's LimitOutput keeps at most max_lines lines of each cell's stream.
c.GuardedExecute.max_cell_output_bytes = 100_000
c.GuardedExecute.max_notebook_output_bytes = 2_000_000
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 50

# A deleted test cell is put back (and scored); edited locked cells are overwritten from the gradebook.
c.OverwriteCells.add_missing_cells = True

# Students see why they lost points, never the hidden tests themselves; the summary on top lists every check that
# scored the lab (the stack checks too) with the same total as the terminal table and grades.csv.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "graders.feedback.GradeSummary",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]


# The grading kernel's own log goes to the terminal of `make grade`, not into the notebook: keep it to errors, so
# ipykernel's "running over TCP without encryption" warning (the kernel listens on 127.0.0.1 only) is not printed
# under every grade table.
c.Execute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]
