#pragma once
// The TCP socket type of every connection until its WebSocket upgrade (HTTP requests, the API,
// the TLS handshake): bound to its loop's io_context executor rather than the polymorphic
// any_io_executor, so each asynchronous operation carries a smaller executor (the socket is 40
// bytes instead of 88). After the upgrade the WebSocket session takes the bare descriptor and
// the loop's Poller watches it (shell/poller.hpp).

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace boundary::realtime::shell {

using TcpSocket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

}  // namespace boundary::realtime::shell
