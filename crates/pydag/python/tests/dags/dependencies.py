"""Every way to set a dependency: >> and <<, set_downstream/set_upstream, lists on either
side, and labels."""
from datetime import datetime

from airflow.operators.empty import EmptyOperator
from airflow.sdk import DAG, Label

with DAG("dependencies", start_date=datetime(2024, 1, 1), schedule=None):
    a, b, c, d, e, f, g, h, i, j = [EmptyOperator(task_id=name) for name in "abcdefghij"]
    assert (a >> b) is b
    assert (c << b) is b
    assert ([a, b] >> d) is d
    assert ([a] << e) is e
    f.set_upstream([d, e])
    f.set_downstream(g)
    g << [h]
    h >> Label("then") >> i
    j << Label("after") << i
