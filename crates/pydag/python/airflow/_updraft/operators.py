"""The standard operators: Empty, Python, Branch/ShortCircuit, Bash, Email, TriggerDagRun,
and the branching mix-ins, with Airflow's run-time behaviour.

A branching operator's `execute` returns its choice (a task id, a list of ids, or None);
the runner writes it as the try's return value and Updraft follows it. Which operators
branch is told by the class attribute `branch_kind` ("branch" or "short_circuit").
"""

import datetime
import inspect
import os
import shutil
import subprocess
import sys

from .baseoperator import BaseOperator, MappedArgument
from .exceptions import AirflowException, AirflowFailException, AirflowSkipException
from .trigger_rule import DagRunState


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
    """Run `bash -c command` with stderr joined to stdout, echoing its output; return (exit
    code, last line). As Airflow's SubprocessHook: the last line read, stripped at its end,
    even when empty, and "" when the command printed nothing (docs/airflow-differences.md)."""
    bash = shutil.which("bash") or "bash"
    sys.stdout.flush()
    sys.stderr.flush()
    proc = subprocess.Popen(
        [bash, "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=False,
    )
    last = ""
    for raw in iter(proc.stdout.readline, b""):
        last = raw.decode(encoding, errors="backslashreplace").rstrip()
        sys.stdout.write(last + "\n")
        sys.stdout.flush()
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


# -- Email --------------------------------------------------------------------------------

# The SMTP connection ids that mean "the configured server" (Airflow 2's None, Airflow 3's
# default); Updraft's configured server is its [smtp] settings.
DEFAULT_SMTP_CONN_IDS = (None, "smtp_default")


class EmailOperator(BaseOperator):
    """Sends one email. Updraft sends it natively as an `email` task when its arguments fit
    one; otherwise `execute` sends it here over Updraft's [smtp] settings."""

    template_fields = ("to", "from_email", "subject", "html_content", "files", "cc", "bcc")
    template_fields_renderers = {"html_content": "html"}
    template_ext = (".html",)
    ui_color = "#e6faf9"
    _updraft_arguments = {
        "subject": None,
        "html_content": None,
        "from_email": None,
        "files": None,
        "cc": None,
        "bcc": None,
        "mime_subtype": "mixed",
        "mime_charset": "utf-8",
        "conn_id": None,
        "custom_headers": None,
    }

    def __init__(self, *, to, **kwargs):
        super().__init__(**kwargs)
        self.to = to
        self.files = self.files or []

    def unsupported(self):
        """Why Updraft cannot send this email at all (an argument it has no equivalent for),
        or None."""
        if self.conn_id not in DEFAULT_SMTP_CONN_IDS:
            return (
                "conn_id=%r is not supported by Updraft: email goes out over Updraft's [smtp] "
                "settings (leave conn_id unset)" % (self.conn_id,)
            )
        for name in ("subject", "html_content"):
            if getattr(self, name) is None:
                return (
                    "%s is not set, and Updraft has no SMTP connection templates to take it "
                    "from: give %s" % (name, name)
                )
        return None

    def execute(self, context):
        from .mail import send_email

        problem = self.unsupported()
        if problem is not None:
            # Retrying cannot help.
            raise AirflowFailException("EmailOperator %s: %s" % (self.task_id, problem))
        send_email(
            self.to,
            self.subject,
            self.html_content,
            files=self.files,
            cc=self.cc,
            bcc=self.bcc,
            mime_subtype=self.mime_subtype,
            mime_charset=self.mime_charset,
            custom_headers=self.custom_headers,
            from_email=self.from_email,
        )


# -- TriggerDagRun --------------------------------------------------------------------------


class _ArgNotSet:
    """Airflow's NOTSET: an argument that was not given (None has a meaning of its own)."""

    def __repr__(self):
        return "NOTSET"


NOTSET = _ArgNotSet()


def run_states(states, what):
    """Run state names from DagRunState values or their text."""
    names = [getattr(s, "value", s) for s in states]
    valid = {s.value for s in DagRunState}
    for name in names:
        if name not in valid:
            raise ValueError("%s: %r is not a DAG run state (%s)" % (what, name, ", ".join(sorted(valid))))
    return names


class TriggerDagRunOperator(BaseOperator):
    """Makes a run of another DAG, optionally waiting for it to end. Updraft runs it natively
    as a `trigger_dag` task; the arguments that kind has no equivalent for are refused when
    the DAG file is parsed. Python cannot make DAG runs, so `execute` (reached only by a
    subclass) fails saying so."""

    template_fields = (
        "trigger_dag_id",
        "trigger_run_id",
        "logical_date",
        "conf",
        "wait_for_completion",
        "skip_when_already_exists",
    )
    template_fields_renderers = {"conf": "py"}
    ui_color = "#ffefeb"
    _updraft_arguments = {
        "trigger_run_id": None,
        "conf": None,
        "logical_date": NOTSET,
        "reset_dag_run": False,
        "wait_for_completion": False,
        "poke_interval": 60,
        "allowed_states": None,
        "failed_states": None,
        "skip_when_already_exists": False,
        "fail_when_dag_is_paused": False,
        "deferrable": False,
    }

    def __init__(self, *, trigger_dag_id, execution_date=None, **kwargs):
        super().__init__(**kwargs)
        self.trigger_dag_id = trigger_dag_id
        if execution_date is not None:
            # Airflow 2's name for logical_date.
            if self.logical_date is not NOTSET:
                raise TypeError("TriggerDagRunOperator takes logical_date or execution_date, not both")
            self.logical_date = execution_date
        what = "TriggerDagRunOperator %s" % self.task_id
        if not isinstance(self.logical_date, (_ArgNotSet, type(None), str, datetime.datetime, MappedArgument)):
            raise TypeError(
                "%s: logical_date must be a string, a datetime or None, not %s"
                % (what, type(self.logical_date).__name__)
            )
        if not isinstance(self.allowed_states, MappedArgument):
            self.allowed_states = run_states(self.allowed_states or ["success"], what + ": allowed_states")
        if not isinstance(self.failed_states, MappedArgument):
            failed = self.failed_states
            self.failed_states = run_states(["failed"] if failed is None else failed, what + ": failed_states")

    def execute(self, context):
        # Retrying cannot help.
        raise AirflowFailException(
            "task %s (%s, a subclass of TriggerDagRunOperator) cannot run in Python: Updraft "
            "makes DAG runs only with its native trigger_dag kind, which only a plain "
            "TriggerDagRunOperator becomes" % (self.task_id, type(self).__name__)
        )
