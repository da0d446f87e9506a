-- luacheck configuration (`make lint`): LuaJIT's globals, 120 columns.
std = 'luajit'
max_line_length = 120
self = false                 -- a method may leave its implicit self unused
-- 'not (x < y)' is written on purpose where a NaN must count as "not better"
ignore = {'581'}
-- table.unpack (Lua 5.2+) is tried before LuaJIT's global unpack in a few files
read_globals = {table = {fields = {'unpack'}}}
files['spec'] = {std = '+busted'}
-- the callback specs capture io.stderr to read what a callback prints
files['spec/train/callbacks_spec.lua'] = {ignore = {'122'}}
