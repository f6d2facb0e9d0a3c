/**
 * @ramure/ssh: ramure machines on other hosts, over OpenSSH.
 */
export * as SshMachineProvider from "./SshMachineProvider.js"
