#!/usr/bin/env node
import "../dist/ramure.js"
