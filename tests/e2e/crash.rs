//! `dagctl standalone` killed with SIGKILL mid-run and started again finishes the run, and
//! no task instance try ever started twice — shown by the tasks' own side effects.

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::{Sandbox, newest_run, wait_for};

#[test]
fn killed_standalone_resumes_the_run_without_starting_a_try_twice() {
    let mut sandbox = Sandbox::new();
    sandbox.set("UPDRAFT__SCHEDULER__ZOMBIE_THRESHOLD", "2s");
    sandbox.set("UPDRAFT__WORKER__HEARTBEAT_INTERVAL", "500ms");
    let side = sandbox.path().join("side_effects.txt");
    let mut dag = String::from("default_args: {retries: 2, retry_delay: 1s}\ntasks:\n");
    for i in 0..12 {
        dag.push_str(&format!(
            "  - id: t{i:02}\n    bash: 'echo \"{{{{ ti.task_id }}}} {{{{ ti.try_number }}}} start\" >> {side}; sleep 0.25; echo \"{{{{ ti.task_id }}}} {{{{ ti.try_number }}}} end\" >> {side}'\n",
            side = side.display()
        ));
        if i > 0 {
            dag.push_str(&format!("    depends_on: [t{:02}]\n", i - 1));
        }
    }
    sandbox.write_dag("crashy.yaml", &dag);

    let server = sandbox.standalone_logged_in();
    wait_for("DAG parsed", Duration::from_secs(30), || {
        sandbox
            .run(&["dags", "list-runs", "crashy"])
            .status
            .success()
            .then_some(())
    });
    let out = sandbox.run(&["dags", "trigger", "crashy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("a few tasks to start", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&side).unwrap_or_default();
        (text.matches(" start").count() >= 4).then_some(())
    });
    server.kill();

    // The new server listens on a new port: log in to it.
    let _server = sandbox.standalone_logged_in();
    wait_for(
        "the run to finish after restart",
        Duration::from_secs(90),
        || newest_run(&sandbox, "crashy").filter(|(_, state)| state == "success"),
    );

    let text = std::fs::read_to_string(&side).expect("side effects");
    let mut starts: HashMap<(String, String), usize> = HashMap::new();
    let mut ends: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            [task, try_number, "start"] => {
                *starts
                    .entry((task.to_string(), try_number.to_string()))
                    .or_default() += 1;
            }
            [task, _, "end"] => *ends.entry(task.to_string()).or_default() += 1,
            _ => panic!("unexpected line {line:?}"),
        }
    }
    for ((task, try_number), count) in &starts {
        assert_eq!(
            *count, 1,
            "{task} try {try_number} started {count} times:\n{text}"
        );
    }
    for i in 0..12 {
        let task = format!("t{i:02}");
        assert!(
            ends.get(&task).copied().unwrap_or(0) >= 1,
            "{task} never finished:\n{text}"
        );
    }
}

/// Whether a process whose command line contains `marker` is alive (read from /proc).
fn process_alive(marker: &str) -> bool {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries.filter_map(Result::ok).any(|entry| {
                std::fs::read(entry.path().join("cmdline"))
                    .map(|cmd| {
                        String::from_utf8_lossy(&cmd)
                            .replace('\0', " ")
                            .contains(marker)
                    })
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

#[test]
fn a_killed_standalone_takes_its_task_processes_with_it() {
    let mut sandbox = Sandbox::new();
    // A sleep length no other process on the machine uses, to find this task's process.
    let marker = format!("sleep 3{}.25", std::process::id() % 1000);
    sandbox.write_dag(
        "long.yaml",
        &format!("tasks:\n  - {{id: long, bash: '{marker}'}}\n"),
    );
    let server = sandbox.standalone_logged_in();
    wait_for("DAG parsed", Duration::from_secs(30), || {
        sandbox
            .run(&["dags", "list-runs", "long"])
            .status
            .success()
            .then_some(())
    });
    assert!(sandbox.run(&["dags", "trigger", "long"]).status.success());
    wait_for("the task process to start", Duration::from_secs(30), || {
        process_alive(&marker).then_some(())
    });
    server.kill();
    wait_for(
        "the orphaned task process to die",
        Duration::from_secs(10),
        || (!process_alive(&marker)).then_some(()),
    );
}

#[test]
fn a_killed_standalone_takes_its_warm_python_tries_with_it() {
    let mut sandbox = Sandbox::new();
    let pids = sandbox.path().join("pids.txt");
    sandbox.write_dag(
        "long_python.py",
        &format!(
            "import os, time\n\
             from airflow import DAG\n\
             from airflow.operators.python import PythonOperator\n\n\
             def linger():\n\
             \x20   with open({pids:?}, 'w') as f:\n\
             \x20       f.write('%d %d' % (os.getpid(), os.getppid()))\n\
             \x20   time.sleep(300)\n\n\
             with DAG('long_python', schedule=None):\n\
             \x20   PythonOperator(task_id='linger', python_callable=linger)\n",
            pids = pids.display().to_string()
        ),
    );
    let server = sandbox.standalone_logged_in();
    wait_for("DAG parsed", Duration::from_secs(30), || {
        sandbox
            .run(&["dags", "list-runs", "long_python"])
            .status
            .success()
            .then_some(())
    });
    assert!(
        sandbox
            .run(&["dags", "trigger", "long_python"])
            .status
            .success()
    );
    // The try and the warm process it was forked from.
    let (try_pid, zygote_pid) = wait_for("the try to start", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&pids).ok()?;
        let mut parts = text.split_whitespace().map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??))
    });
    assert!(pid_alive(try_pid) && pid_alive(zygote_pid));
    server.kill();
    wait_for(
        "the warm Python process and its try to die",
        Duration::from_secs(10),
        || (!pid_alive(try_pid) && !pid_alive(zygote_pid)).then_some(()),
    );
}

/// Whether a process with this pid is running (a zombie counts as gone).
fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !state.is_some_and(|s| s.starts_with('Z'))
        })
        .unwrap_or(false)
}
