// Asio (with its SSL layer) and Beast are compiled once, here (BOOST_ASIO_SEPARATE_COMPILATION,
// BOOST_BEAST_SEPARATE_COMPILATION): every other shell file includes only declarations,
// which keeps rebuilds fast on small machines.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
