//! End-to-end tests: the real `rollci` binary on the real demo lab (ansible-playbook,
//! haproxy, the API nodes), each test in its own workspace, loopback block and port.

mod abort;
mod architecture;
mod config_errors;
mod evidence;
mod failures;
mod faults;
mod groovy;
mod jenkins;
mod jump;
mod keepalive;
mod keystone;
mod lab;
mod libvirt;
mod openstack;
mod openstack_lab;
mod pipeline;
mod properties;
mod reports;
mod results;
mod ssh_hosts;
