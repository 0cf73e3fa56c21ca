"""The benchmark behind ``hack/bench.py``: pyrunc beside runc and crun, one machine, one run.

Modules, one job each:

* ``procs``     run a command quietly, time it, wait for a container's init to go;
* ``runtimes``  which runtimes are under test and how each is called (crun's hybrid-host wrapper);
* ``bundles``   one shared busybox rootfs and a small config.json per container;
* ``stats``     samples, medians, p10/p90, ratios;
* ``context``   what every scenario shares: runtimes, bundles, results, fresh container ids;
* ``latency``   the per-command scenarios (run, create/start/kill/delete, state, exec, 50 at once);
* ``memory``    the waiting init's RSS and the smallest memory limit that still runs ``echo ok``;
* ``scale``     growth with 0/100/1000 containers alive, and Kubernetes-style masking;
* ``floor``     CPython's own start-up cost and pyrunc's import profile;
* ``cleanup``   removing every container, cgroup, mount and directory, then checking for leaks;
* ``report``    the table (plain and Markdown), the JSON file and the PNG chart;
* ``cli``       the arguments and the order of the scenarios.
"""
