#!/bin/bash
/work/main/docs/results/sched-pg-tpch/issue13/load.sh
/work/main/docs/results/sched-pg-tpch/issue13/run.sh exact 1
