#!/usr/bin/env luajit
-- examples/train.lua: the notebook's whole pipeline from the command line: data (the
-- synthetic shapes by default, generated on first use; --data DIR for Flickr8k), encoder,
-- tokenizer, split, model, fit with callbacks, saving, greedy captions of the test split,
-- BLEU, and the pictures. Every option is listed by --help and in docs/commands.md. The command
-- itself is lua/luacap/cli/train.lua, which the installed luacap-train runs too; this file
-- only points package.path at the checkout.
local script_dir = (arg and arg[0] or ''):match('^(.*)/examples/[^/]*$') or '.'
package.path = script_dir .. '/lua/?.lua;' .. script_dir .. '/lua/?/init.lua;' .. package.path
package.cpath = script_dir .. '/lua/?.so;' .. package.cpath

local status = require('luacap.cli.train').main(arg, 'train.lua')
if status ~= 0 then os.exit(status) end
