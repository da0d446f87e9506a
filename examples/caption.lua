#!/usr/bin/env luajit
-- examples/caption.lua: captions image files (JPEG or PNG, anywhere on disk) or dataset ids
-- with a trained model file, printing reference captions for dataset images. The command
-- itself is lua/luacap/cli/caption.lua, which the installed luacap-caption runs too; this
-- file only points package.path at the checkout. Exit status 1 when any image failed.
local script_dir = (arg and arg[0] or ''):match('^(.*)/examples/[^/]*$') or '.'
package.path = script_dir .. '/lua/?.lua;' .. script_dir .. '/lua/?/init.lua;' .. package.path
package.cpath = script_dir .. '/lua/?.so;' .. package.cpath

os.exit(require('luacap.cli.caption').main(arg, 'caption.lua', 'train.lua'))
