import { suite } from "./suite.js"

// The behaviours that depend on how pi runs; the others are covered on tmux.
suite("local", { subset: true })
