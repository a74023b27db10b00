"""Every way of setting a dependency ends in the same edges: >> and <<, set_upstream and
set_downstream, lists on either side, and labels in both directions."""

import unittest

from support import parsed_tasks


class Dependencies(unittest.TestCase):
    def test_edges(self):
        upstream = {task_id: t["depends_on"] for task_id, t in parsed_tasks("dependencies.py", "dependencies").items()}
        self.assertEqual(upstream, {
            "a": ["e"],
            "b": ["a"],
            "c": ["b"],
            "d": ["a", "b"],
            "e": [],
            "f": ["d", "e"],
            "g": ["f", "h"],
            "h": [],
            "i": ["h"],
            "j": ["i"],
        })


if __name__ == "__main__":
    unittest.main()
