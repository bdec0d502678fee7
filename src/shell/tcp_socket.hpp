#pragma once
// The TCP socket type of every connection: bound to its loop's io_context executor rather than
// the polymorphic any_io_executor. Each asynchronous operation carries a copy of the executor,
// and an idle WebSocket connection keeps its read wait pending all its life: with the concrete
// executor that wait is 104 bytes instead of 208, and the socket 40 instead of 88 (heaptrack).
// Accepting straight into this type (basic_socket_acceptor::async_accept(io_context&, ...))
// avoids re-registering each descriptor with epoll on the upgrade.

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace boundary::realtime::shell {

using TcpSocket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

}  // namespace boundary::realtime::shell
