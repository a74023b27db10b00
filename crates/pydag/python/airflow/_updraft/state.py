"""Process-wide state: what the DAG file being imported is building, and what the task
being run may read (variables, connections, SMTP settings, the current context)."""

import os

# "parse" while a DAG file is imported for its structure, "run" while a task try runs.
mode = "parse"

# Variables as stored (strings), connections as objects, from the request or the spec.
variables = {}
connections = {}
smtp = None

# The folder of the DAG file being loaded, and the DAGs folder (template files are looked up
# relative to the former).
dag_folder = None
dags_folder = None
fileloc = None

# Every DAG object created while the file was imported, in creation order.
created_dags = []

# The stack of DAGs opened with `with DAG(...)` or by calling a @dag function.
dag_stack = []

# The stack of task groups opened with `with TaskGroup(...)` or a @task_group call.
group_stack = []

# The contexts of the tasks currently executing (get_current_context reads the last one).
context_stack = []


def reset_for_file(path, dags_folder_path):
    """Forget everything a previous file built (children are forked warm, so mostly a no-op)."""
    global dag_folder, dags_folder, fileloc
    created_dags.clear()
    dag_stack.clear()
    group_stack.clear()
    fileloc = os.path.abspath(path)
    dag_folder = os.path.dirname(fileloc)
    dags_folder = dags_folder_path


def current_dag():
    """The DAG new tasks join: the innermost open DAG, else the DAG of an open task group
    (`with TaskGroup(..., dag=dag)` outside any `with DAG`)."""
    if dag_stack:
        return dag_stack[-1]
    if group_stack:
        return group_stack[-1].dag
    return None


def current_group(dag):
    """The innermost open task group that belongs to `dag`, or the DAG's root group."""
    for group in reversed(group_stack):
        if group.dag is dag:
            return group
    return dag.task_group if dag is not None else None
