#include "shell/poller_impl.hpp"
#include "shell/ws_session.hpp"

namespace boundary::realtime::shell {

template class Poller<WsSession>;

}  // namespace boundary::realtime::shell
