"""The standard operators: Empty, Python, Branch/ShortCircuit, Bash, and the branching
mix-ins, with Airflow's run-time behaviour.

A branching operator's `execute` returns its choice (a task id, a list of ids, or None);
the runner writes it as the try's return value and Updraft follows it. Which operators
branch is told by the class attribute `branch_kind` ("branch" or "short_circuit").
"""

import inspect
import os
import shutil
import subprocess
import sys

from .baseoperator import BaseOperator
from .exceptions import AirflowException, AirflowSkipException


class EmptyOperator(BaseOperator):
    """Does nothing; Updraft runs it natively as an `empty` task."""

    ui_color = "#e8f7e4"

    def execute(self, context):
        pass


class DummyOperator(EmptyOperator):
    """Airflow 2's name for EmptyOperator."""


# -- Python -------------------------------------------------------------------------------


def context_kwargs(function, args, context):
    """Airflow's rule for what a callable receives besides `args`: the whole context when it
    takes `**kwargs`, else only the names its signature declares."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return dict(context)
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return dict(context)
    positional = list(parameters)[: len(args)]
    return {
        name: context[name]
        for name in parameters
        if name in context and name not in positional
    }


class PythonOperator(BaseOperator):
    template_fields = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers = {"templates_dict": "json", "op_args": "py", "op_kwargs": "py"}
    ui_color = "#ffefeb"
    # Only the callable's signature decides what it gets (Airflow 2's flag is accepted).
    shallow_copy_attrs = ("python_callable", "op_kwargs")

    def __init__(
        self,
        *,
        python_callable,
        op_args=None,
        op_kwargs=None,
        templates_dict=None,
        templates_exts=None,
        show_return_value_in_logs=True,
        provide_context=None,
        **kwargs
    ):
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise AirflowException("`python_callable` param must be callable")
        self.python_callable = python_callable
        self.op_args = op_args or ()
        self.op_kwargs = op_kwargs or {}
        self.templates_dict = templates_dict
        self.templates_exts = templates_exts
        self.show_return_value_in_logs = show_return_value_in_logs

    def execute(self, context):
        context.update(self.op_kwargs)
        context["templates_dict"] = self.templates_dict
        self.op_kwargs = self.determine_kwargs(context)
        result = self.execute_callable()
        if self.show_return_value_in_logs:
            self.log.info("Done. Returned value was: %s", result)
        else:
            self.log.info("Done. Returned value not shown")
        return result

    def determine_kwargs(self, context):
        return context_kwargs(self.python_callable, list(self.op_args), context)

    def execute_callable(self):
        return self.python_callable(*self.op_args, **self.op_kwargs)


class SkipMixin:
    """Skipping is Updraft's: a branch names what to follow, the rest is skipped."""

    def skip(self, *args, **kwargs):
        raise NotImplementedError("SkipMixin.skip() is not supported by Updraft: return the branch to follow instead")

    def skip_all_except(self, *args, **kwargs):
        raise NotImplementedError("skip_all_except() is not supported by Updraft: return the branch to follow instead")


class BranchMixIn(SkipMixin):
    branch_kind = "branch"

    def do_branch(self, context, branches_to_execute):
        """Return the choice; Updraft follows it and skips the other direct downstream."""
        if branches_to_execute is None:
            return None
        if isinstance(branches_to_execute, str):
            return branches_to_execute
        return list(branches_to_execute)


class BaseBranchOperator(BaseOperator, BranchMixIn):
    branch_kind = "branch"
    inherits_from_skipmixin = True

    def choose_branch(self, context):
        raise NotImplementedError("%s must implement choose_branch(context)" % type(self).__name__)

    def execute(self, context):
        return self.do_branch(context, self.choose_branch(context))


class BranchPythonOperator(PythonOperator, BranchMixIn):
    branch_kind = "branch"

    def execute(self, context):
        return self.do_branch(context, super().execute(context))


class ShortCircuitOperator(PythonOperator, SkipMixin):
    """Truthy: every direct downstream task runs; falsy: they are skipped and the skip flows
    on through the trigger rules (`ignore_downstream_trigger_rules` is approximated so)."""

    branch_kind = "short_circuit"
    ui_color = "#e5f0ff"

    def __init__(self, *, ignore_downstream_trigger_rules=True, **kwargs):
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def execute(self, context):
        condition = super().execute(context)
        self.log.info("Condition result is %s", condition)
        return condition


# -- Bash ---------------------------------------------------------------------------------


def _identity(result):
    return result


def run_bash(command, env, cwd, encoding="utf-8"):
    """Run `bash -c command`, echoing its output; return (exit code, last stdout line)."""
    bash = shutil.which("bash") or "bash"
    sys.stdout.flush()
    sys.stderr.flush()
    proc = subprocess.Popen(
        [bash, "-c", command],
        stdout=subprocess.PIPE,
        stderr=None,
        env=env,
        cwd=cwd,
        start_new_session=False,
    )
    last = None
    for raw in iter(proc.stdout.readline, b""):
        line = raw.decode(encoding, errors="backslashreplace").rstrip("\n")
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if line.strip():
            last = line
    proc.stdout.close()
    return proc.wait(), last


class BashOperator(BaseOperator):
    template_fields = ("bash_command", "env", "cwd")
    template_fields_renderers = {"bash_command": "bash", "env": "json"}
    template_ext = (".sh", ".bash")
    ui_color = "#f0ede4"

    def __init__(
        self,
        *,
        bash_command,
        env=None,
        append_env=False,
        output_encoding="utf-8",
        skip_exit_code=None,
        skip_on_exit_code=99,
        cwd=None,
        output_processor=None,
        **kwargs
    ):
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = env
        self.append_env = append_env
        self.output_encoding = output_encoding
        if skip_exit_code is not None:
            skip_on_exit_code = skip_exit_code
        if skip_on_exit_code is None:
            self.skip_on_exit_code = []
        elif isinstance(skip_on_exit_code, int):
            self.skip_on_exit_code = [skip_on_exit_code]
        else:
            self.skip_on_exit_code = list(skip_on_exit_code)
        self.cwd = cwd
        self.output_processor = output_processor

    def get_env(self, context):
        system = dict(os.environ)
        if self.env is None:
            env = system
        elif self.append_env:
            system.update(self.env)
            env = system
        else:
            env = dict(self.env)
            for name, value in os.environ.items():
                if name.startswith("AIRFLOW_CTX_"):
                    env.setdefault(name, value)
        return {str(k): str(v) for k, v in env.items()}

    def execute(self, context):
        if self.cwd is not None:
            if not os.path.exists(self.cwd):
                raise AirflowException("Can not find the cwd: %s" % self.cwd)
            if not os.path.isdir(self.cwd):
                raise AirflowException("The cwd %s must be a directory" % self.cwd)
        code, last = run_bash(self.bash_command, self.get_env(context), self.cwd, self.output_encoding)
        if code in self.skip_on_exit_code:
            raise AirflowSkipException("Bash command returned exit code %d. Skipping." % code)
        if code != 0:
            raise AirflowException(
                "Bash command failed. The command returned a non-zero exit code %d." % code
            )
        processor = self.output_processor or _identity
        return processor(last)
