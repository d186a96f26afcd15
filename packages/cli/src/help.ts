// Help texts in the layout Python's argparse gives the Nodepool CLI on an 80-column terminal
// (`nodepool -h` is byte-compatible with Nodepool 3.x's for the commands both have; ours are
// appended). Keep in step with COMMANDS in args.ts (a test checks every option appears here).

export const MAIN_HELP = `usage: nodepool [-h] [-l LOGCONFIG] [--version] [-c CONFIG] [-s SECURE]
                [--debug]
                {list,image-list,dib-image-list,image-build,alien-image-list,delete,image-delete,dib-image-delete,config-validate,request-list,info,erase,hold,label-list,history,stats,token,image-upload,static-host,image-status,image-pause,image-unpause,export-image-data,import-image-data}
                ...

Node pool.

options:
  -h, --help            show this help message and exit
  -l LOGCONFIG          path to log config file (default: None)
  --version             show program's version number and exit
  -c CONFIG             path to config file (default:
                        /etc/nodepool/nodepool.yaml)
  -s SECURE             path to secure file (default: None)
  --debug               show DEBUG level logging (default: False)

commands:
  valid commands

  {list,image-list,dib-image-list,image-build,alien-image-list,delete,image-delete,dib-image-delete,config-validate,request-list,info,erase,hold,label-list,history,stats,token,image-upload,static-host,image-status,image-pause,image-unpause,export-image-data,import-image-data}
                        additional help
    list                list nodes
    image-list          list images from providers
    dib-image-list      list images built with diskimage-builder
    image-build         build image using diskimage-builder
    alien-image-list    list images not accounted for by nodepool
    delete              place a node in the DELETE state
    image-delete        delete an image
    dib-image-delete    Delete a dib built image from disk along with all
                        cloud uploads of this image
    config-validate     Validate configuration file
    request-list        list the current node requests
    info                Show provider data from zookeeper
    erase               Erase provider data from zookeeper
    hold                place a node in the HOLD state
    label-list          list the labels of the registered launchers
    history             show the state history of nodes and requests
    stats               show launch and request statistics
    token               create, list and revoke web API tokens
    image-upload        upload the newest build of an image to a provider again
    static-host         add, remove and list static hosts at runtime
    image-status        list image status
    image-pause         pause an image
    image-unpause       unpause an image
    export-image-data   Export image data from ZooKeeper
    import-image-data   Import image data to ZooKeeper
`;

export const COMMAND_HELP: Readonly<Record<string, string>> = {
  'list': `usage: nodepool list [-h] [--detail] [--json]

options:
  -h, --help  show this help message and exit
  --detail    Output detailed node info
  --json      print the data as JSON
`,
  'image-list': `usage: nodepool image-list [-h] [--json]

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'dib-image-list': `usage: nodepool dib-image-list [-h] [--json]

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'image-build': `usage: nodepool image-build [-h] [--wait] [--json] image

positional arguments:
  image       image name

options:
  -h, --help  show this help message and exit
  --wait      wait until the build is finished
  --json      print the data as JSON
`,
  'image-upload': `usage: nodepool image-upload [-h] [--wait] [--json] provider image

positional arguments:
  provider    provider name
  image       image name

options:
  -h, --help  show this help message and exit
  --wait      wait until the upload is finished
  --json      print the data as JSON
`,
  'alien-image-list': `usage: nodepool alien-image-list [-h] [--json] [provider]

positional arguments:
  provider    provider name

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'delete': `usage: nodepool delete [-h] [--now] [--json] id

positional arguments:
  id          node id

options:
  -h, --help  show this help message and exit
  --now       delete the node in the foreground
  --json      print the data as JSON
`,
  'image-delete': `usage: nodepool image-delete [-h] --provider PROVIDER --image IMAGE
                             --upload-id UPLOAD_ID --build-id BUILD_ID
                             [--json]

options:
  -h, --help            show this help message and exit
  --provider PROVIDER   provider name
  --image IMAGE         image name
  --upload-id UPLOAD_ID
                        image upload id
  --build-id BUILD_ID   image build id
  --json                print the data as JSON
`,
  'dib-image-delete': `usage: nodepool dib-image-delete [-h] [--json] id

positional arguments:
  id          dib image id

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'config-validate': `usage: nodepool config-validate [-h] [--json]

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'request-list': `usage: nodepool request-list [-h] [--json]

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'info': `usage: nodepool info [-h] [--json] PROVIDER

positional arguments:
  PROVIDER    Provider name

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'erase': `usage: nodepool erase [-h] [--force] [--json] PROVIDER

positional arguments:
  PROVIDER    Provider name

options:
  -h, --help  show this help message and exit
  --force     Bypass the warning prompt
  --json      print the data as JSON
`,
  'hold': `usage: nodepool hold [-h] [--reason REASON] [--json] id

positional arguments:
  id               node id

options:
  -h, --help       show this help message and exit
  --reason REASON  Reason this node is held
  --json           print the data as JSON
`,
  'label-list': `usage: nodepool label-list [-h] [--json]

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'image-status': `usage: nodepool image-status [-h] [--json]

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'image-pause': `usage: nodepool image-pause [-h] [--json] image

positional arguments:
  image       image name

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'image-unpause': `usage: nodepool image-unpause [-h] [--json] image

positional arguments:
  image       image name

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'export-image-data': `usage: nodepool export-image-data [-h] [--json] path

positional arguments:
  path        Export file path

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
  'import-image-data': `usage: nodepool import-image-data [-h] [--json] path

positional arguments:
  path        Import file path

options:
  -h, --help  show this help message and exit
  --json      print the data as JSON
`,
};
