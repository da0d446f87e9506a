-- Specs for luacap.cli.args: option converters and the one-line user message.
local cli_args = require 'luacap.cli.args'

describe('cli.args', function()
  it('accepts integers at or above the bound and says why it refuses the rest', function()
    local at_least_1 = cli_args.int_at_least(1)
    assert.equal(64, at_least_1('64'))
    assert.same({nil, "expected an integer >= 1, got '0'"}, {at_least_1('0')})
    assert.same({nil, "expected an integer >= 1, got '2.5'"}, {at_least_1('2.5')})
    assert.same({nil, "expected an integer >= 1, got 'x'"}, {at_least_1('x')})
    assert.equal(0, cli_args.int_at_least(0)('0'))
  end)

  it('accepts only positive numbers as rates', function()
    assert.equal(0.001, cli_args.positive('0.001'))
    assert.same({nil, "expected a number > 0, got '0'"}, {cli_args.positive('0')})
    assert.same({nil, "expected a number > 0, got 'nan'"}, {cli_args.positive('nan')})
  end)

  it('accepts numbers >= 0 for the length penalty, on both commands, with the beam options', function()
    assert.equal(0, cli_args.non_negative('0'))
    assert.same({nil, "expected a number >= 0, got '-1'"}, {cli_args.non_negative('-1')})
    assert.same({nil, "expected a number >= 0, got 'nan'"}, {cli_args.non_negative('nan')})
    for _, cmd in ipairs({'train', 'caption'}) do
      local parser = require('luacap.cli.' .. cmd).parser(cmd .. '.lua', 'train.lua')
      local argv = {'--length-penalty', '2', '--block-ngram', '3'}
      if cmd == 'caption' then argv[#argv + 1] = 'x.jpg' end
      local args = parser:parse(argv)
      assert.equal(2, args.length_penalty)
      assert.equal(3, args.block_ngram)
      local ok, err = parser:pparse({'--length-penalty=-0.5', 'x.jpg'})
      assert.is_false(ok)
      assert.truthy(err:find('expected a number >= 0', 1, true), err)
      assert.is_false((parser:pparse({'--block-ngram', '1.5', 'x.jpg'})))
    end
  end)

  it('drops the Lua source position and the traceback from an error for a user', function()
    assert.equal('smallcnn: input_size 16 must be a multiple of 2^5',
      cli_args.user_message('./lua/luacap/pipeline.lua:159: smallcnn: input_size 16 must be a multiple of 2^5' ..
        '\nstack traceback:\n\t[C]: in function error'))
    assert.equal('captions: /x/captions.txt: No such file or directory',
      cli_args.user_message('captions: /x/captions.txt: No such file or directory'))
  end)

  it('shows list options as comma-separated values', function()
    assert.equal('16,32,64', cli_args.show({16, 32, 64}))
    assert.equal('0.5', cli_args.show(0.5))
  end)
end)
