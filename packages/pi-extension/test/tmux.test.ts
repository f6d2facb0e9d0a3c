import { suite } from "./suite.js"

suite("tmux")
