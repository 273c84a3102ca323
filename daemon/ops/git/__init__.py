"""All of expd's git, in one package: what expd does to a repository, and with which identity.

`store` (the user's repository, expd's private git dirs and safe checkouts, all in-process through
libgit2: no hooks, no fsmonitor, no filters, no signing, no process start-ups), `tree_sync` and
`index_file` (checkouts that write only the files that differ, keeping the others' stat data in
expd's index), `dotgit` (a tree's `.git` written afresh), `user_writes` (objects and expd's own refs in the user's repository),
`diff` (a result's patch and numbers), `lookup` (questions about the user's repository, and who
commits), `agent_tree` (the agent's standalone tree and the capture of its change), `candidate`
(the change captured, before and after publishing), `eval_tree` (the trees measurements run in),
`run_trees` (a run's two trees), `replay` (finalize's cherry-picks) and `cli` (the few git
processes left: the `tune` agent's commits inside the agent's tree, and the demo repository).
"""
