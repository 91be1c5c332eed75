"""The notebook planner: what each notebook tool does to a user's notebook, as pure functions over
its cells. `plans.plan(tool, cells, active, options)` is the one entry (the server's
`POST /kerasgpu/api/v1/notebook-tools/plan` answers with it).

- `cells`: the cells parsed, and what they import, define, build, compile and train;
- `traps`: what in the user's model code breaks under mixed precision or a strategy;
- `wrap`: a cell run in the notebook's one strategy scope;
- `pipeline`: the input-pipeline fixes in the cells that build a dataset;
- `edits`: a plan's messages, refusals, inserted cells and small code edits;
- `plans`: the tools themselves.
"""
