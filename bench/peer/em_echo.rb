# Ruby EventMachine echo server, the original this project follows:
#   ruby em_echo.rb PORT
require 'eventmachine'

module EchoServer
  def receive_data(data)
    send_data(data)
  end
end

EM.epoll
EM.set_descriptor_table_size(20000)
EM.run do
  trap('TERM') { EM.stop }
  trap('INT') { EM.stop }
  EM.start_server('127.0.0.1', ARGV[0].to_i, EchoServer)
  puts "em-echo: listening on 127.0.0.1:#{ARGV[0]} (eventmachine #{EM::VERSION})"
  $stdout.flush
end
