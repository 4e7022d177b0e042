import { Migration } from '@mikro-orm/migrations';

export class Migration20261130053817_mfa extends Migration {

  override name = 'Migration20261130053817_mfa';

  override up(): void | Promise<void> {
    this.addSql(`create table \`mfa_recovery_codes\` (\`id\` integer not null primary key autoincrement, \`user_id\` text not null, \`code_hash\` text not null, \`used_at\` datetime null, \`created_at\` datetime not null, constraint \`mfa_recovery_codes_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`mfa_recovery_codes_user_id_index\` on \`mfa_recovery_codes\` (\`user_id\`);`);

    this.addSql(`create table \`passkeys\` (\`id\` text not null primary key, \`user_id\` text not null, \`credential_id\` text not null, \`public_key\` text not null, \`counter\` integer not null default 0, \`transports\` text null, \`device_type\` text null, \`backed_up\` integer not null default false, \`name\` text null, \`created_at\` datetime not null, \`last_used_at\` datetime null, constraint \`passkeys_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`passkeys_user_id_index\` on \`passkeys\` (\`user_id\`);`);
    this.addSql(`create unique index \`passkeys_credential_id_unique\` on \`passkeys\` (\`credential_id\`);`);

    this.addSql(`create table \`mfa_totp\` (\`user_id\` text not null primary key, \`secret_encrypted\` text not null, \`confirmed_at\` datetime null, \`last_used_step\` integer null, \`created_at\` datetime not null, constraint \`mfa_totp_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on update cascade on delete cascade);`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists \`mfa_recovery_codes\`;`);
    this.addSql(`drop table if exists \`passkeys\`;`);
    this.addSql(`drop table if exists \`mfa_totp\`;`);
  }

}
