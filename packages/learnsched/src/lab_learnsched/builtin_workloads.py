"""Built-in workloads (TOML text, parsed by workload_sources.load_workload like any user file).

`default` mirrors the prototype of the paper note: 3 tables (~3,000 pages), 8 templates (index range
scans on hot regions, scattered index lookups, a full scan, joins), 32 queries an episode, a pool of 800
pages and a queue of 8. `drift` is the same workload whose template mix switches half-way to templates
that read cold regions the first half never touches (the paper's "previously unseen access patterns").
`small` is a toy for tests and the demo.
"""

_TABLES = """
[tables]
orders = 1200
lineitem = 1600
customer = 240
"""

_TEMPLATES = """
[templates.recent_orders]
weight = 3.0
parts = [{table = "orders", kind = "range", pages = [60, 120], region = [0.85, 1.0]}]

[templates.order_lookup]
weight = 2.0
parts = [{table = "orders", kind = "index", pages = [20, 40], region = [0.0, 1.0]}]

[templates.recent_lineitems]
weight = 2.0
parts = [{table = "lineitem", kind = "range", pages = [100, 200], region = [0.8, 1.0]}]

[templates.customer_scan]
weight = 1.0
parts = [{table = "customer", kind = "scan"}]

[templates.orders_join]
weight = 2.0
parts = [
  {table = "orders", kind = "range", pages = [40, 80], region = [0.85, 1.0]},
  {table = "lineitem", kind = "range", pages = [80, 160], region = [0.8, 1.0]},
]

[templates.customer_orders]
weight = 1.0
parts = [
  {table = "customer", kind = "index", pages = [20, 40]},
  {table = "orders", kind = "range", pages = [30, 60], region = [0.5, 1.0]},
]

[templates.lineitem_history]
weight = 1.0
parts = [{table = "lineitem", kind = "range", pages = [150, 300], region = [0.0, 0.8]}]

[templates.customer_report]
weight = 1.0
parts = [
  {table = "customer", kind = "scan"},
  {table = "lineitem", kind = "range", pages = [100, 200], region = [0.6, 1.0]},
]

[templates.archive_orders]
weight = 0.0
parts = [{table = "orders", kind = "range", pages = [80, 160], region = [0.0, 0.4]}]

[templates.archive_join]
weight = 0.0
parts = [
  {table = "lineitem", kind = "range", pages = [100, 200], region = [0.2, 0.5]},
  {table = "orders", kind = "range", pages = [40, 80], region = [0.1, 0.3]},
]
"""

DEFAULT = (
    """
[workload]
name = "default"
queries = 32
arrival = "batch"
buffer_pages = 800
queue_size = 8
"""
    + _TABLES
    + _TEMPLATES
)

DRIFT = (
    """
[workload]
name = "drift"
queries = 32
arrival = "batch"
buffer_pages = 800
queue_size = 8
"""
    + _TABLES
    + _TEMPLATES
    + """
[drift]
at = 16
weights = {archive_orders = 3.0, archive_join = 3.0, order_lookup = 1.0, customer_scan = 1.0}
"""
)

SMALL = """
[workload]
name = "small"
queries = 8
arrival = "batch"
buffer_pages = 24
queue_size = 4

[tables]
a = 64
b = 32

[templates.a_hot]
weight = 2.0
parts = [{table = "a", kind = "range", pages = [6, 12], region = [0.7, 1.0]}]

[templates.b_scan]
weight = 1.0
parts = [{table = "b", kind = "range", pages = [8, 16]}]

[templates.ab_join]
weight = 1.0
parts = [
  {table = "a", kind = "range", pages = [4, 8], region = [0.5, 1.0]},
  {table = "b", kind = "index", pages = [3, 6]},
]
"""

BUILTIN_WORKLOADS: dict[str, str] = {"default": DEFAULT, "drift": DRIFT, "small": SMALL}
