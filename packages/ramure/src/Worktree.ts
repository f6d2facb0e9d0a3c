/**
 * Worktree machines (`Agent.make(name, { worktree })`, `Machine.make({ worktree })`):
 * what a process sees of them, and merging agents' branches.
 */
export * from "@ramure/core/Worktree"
export { collectOrphans, type Collected, merge, type MergeOptions, type MergeResult } from "@ramure/node/GitWorktree"
