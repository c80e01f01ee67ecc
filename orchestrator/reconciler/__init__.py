"""The level-triggered loop: observe the world, ask the planner for a plan, execute it in
dependency waves through the runtime drivers, run health probes and the restart tracker, repeat."""
